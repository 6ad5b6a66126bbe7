import type OpenAI from 'openai';

/**
 * A streamed chat completion left open on the connection: its first chunk read, the rest drained in
 * the background. `ended()` says whether it has finished yet; `drained` settles when it has.
 */
export async function openStream(client: OpenAI, model: string): Promise<{ ended: () => boolean; drained: Promise<void> }> {
  const stream = await client.chat.completions.create({ model, messages: [{ role: 'user', content: 'a prompt long enough for a dozen chunks of streamed answer' }], stream: true });
  const chunks = stream[Symbol.asyncIterator]();
  await chunks.next();
  let ended = false;
  const drained = (async () => {
    while (!(await chunks.next()).done);
    ended = true;
  })();
  return { ended: () => ended, drained };
}
