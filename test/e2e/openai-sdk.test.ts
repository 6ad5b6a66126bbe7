import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import OpenAI from 'openai';
import { decodeJwt } from 'jose';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { REAL_KEY, startHarness, type Harness } from '../helpers/harness.js';

const sha256 = (b: Uint8Array | string) => createHash('sha256').update(b).digest('hex');

let h: Harness;
let client: OpenAI;
beforeAll(async () => {
  h = await startHarness();
  client = new OpenAI({ baseURL: h.base, apiKey: 'placeholder', maxRetries: 0 });
});
afterAll(() => h.close());

/** The receipt the simulator signed for `id` (its digests are over the exact bytes it received and sent). */
async function receiptClaims(id: string): Promise<Record<string, unknown>> {
  for (let i = 0; i < 50 && !h.sim.receipts.peek(id); i++) await new Promise((r) => setTimeout(r, 10));
  return decodeJwt(h.sim.receipts.peek(id) as string);
}

describe('the official OpenAI SDK through the daemon to the simulated router', () => {
  test('chat completion (JSON) with the tresor block; the real key replaces the placeholder', async () => {
    const res = await client.chat.completions.create({ model: 'gpt-oss-120b', messages: [{ role: 'user', content: 'Hello!' }] });
    expect(res.choices[0]?.message.content).toContain('Hello!');
    const tresor = (res as unknown as { tresor: Record<string, unknown> }).tresor;
    expect(tresor).toMatchObject({ requested_route: 'auto/auto/gpt-oss-120b', routed_model: 'eu/tresor/gpt-oss-120b', failover: false });
    expect(tresor.receipt_id).toMatch(/^[0-9a-f-]{36}$/);
    expect(h.sim.lastAuthorizationSha256.get('/v1/chat/completions')).toBe(sha256(`Bearer ${REAL_KEY}`));
  });

  test('a slashed model id, which the SDK percent-encodes (%2F), is retrieved through the daemon', async () => {
    const model = await client.models.retrieve('eu/tresor/gpt-oss-120b');
    expect(model).toMatchObject({ id: 'eu/tresor/gpt-oss-120b', object: 'model' });
  });

  test('chat stream: the bytes the app receives are exactly the bytes the router sent', async () => {
    const body = JSON.stringify({ model: 'eu/tresor/gpt-oss-120b', stream: true, messages: [{ role: 'user', content: 'Stream me something longer than one chunk, please.' }] });
    const res = await request(`${h.base}/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('text/event-stream');
    expect(res.headers['x-accel-buffering']).toBe('no');
    const received = Buffer.from(await res.body.arrayBuffer());
    const finish = received
      .toString()
      .split('\n\n')
      .find((e) => e.includes('"tresor"')) as string;
    const id = (JSON.parse(finish.slice('data: '.length)) as { tresor: { receipt_id: string } }).tresor.receipt_id;
    const claims = await receiptClaims(id);
    expect(claims.response_digest).toBe(`sha256:${sha256(received)}`);
    expect(claims.request_digest).toBe(`sha256:${sha256(body)}`);
    expect(received.toString().endsWith('data: [DONE]\n\n')).toBe(true);
  });

  test('chat stream through the SDK iterator', async () => {
    const stream = await client.chat.completions.create({ model: 'eu/tresor/gpt-oss-120b', stream: true, messages: [{ role: 'user', content: 'abc' }] });
    let text = '';
    let receipt: string | undefined;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta?.content ?? '';
      receipt ??= (chunk as unknown as { tresor?: { receipt_id: string } }).tresor?.receipt_id;
    }
    expect(text).toContain('abc');
    expect(receipt).toBeDefined();
  });

  test('transcription of a real multi-megabyte file through the SDK', async () => {
    const path = join(h.dir, 'audio.wav');
    const size = 4 * 1024 * 1024;
    const fh = await open(path, 'w');
    await fh.write(Buffer.alloc(size, 0x52));
    await fh.close();
    const res = await client.audio.transcriptions.create({ file: createReadStream(path), model: 'auto/auto/whisper-large-v3' });
    expect(res.text).toContain(`${size} bytes`);
    expect((res as unknown as { tresor: { receipt_id: string } }).tresor.receipt_id).toBeDefined();
  });

  test('transcription formats: text and verbose_json (language required)', async () => {
    const file = new File([Buffer.alloc(4000, 1)], 'a.wav', { type: 'audio/wav' });
    const text = await client.audio.transcriptions.create({ file, model: 'whisper-large-v3', response_format: 'text' });
    expect(String(text)).toContain('4000 bytes');
    const verbose = await client.audio.transcriptions.create({ file, model: 'whisper-large-v3', response_format: 'verbose_json', language: 'en' });
    expect(verbose).toMatchObject({ language: 'en', task: 'transcribe' });
    await expect(client.audio.transcriptions.create({ file, model: 'whisper-large-v3', response_format: 'verbose_json' })).rejects.toMatchObject({
      status: 400,
      code: 'missing_field',
    });
  });

  test('models list', async () => {
    const ids: string[] = [];
    for await (const m of client.models.list()) ids.push(m.id);
    expect(ids).toContain('eu/tresor/gpt-oss-120b');
  });

  test('router errors reach the app unchanged', async () => {
    await expect(client.chat.completions.create({ model: 'no/such/model', messages: [{ role: 'user', content: 'x' }] })).rejects.toMatchObject({
      status: 404,
      code: 'model_not_found',
    });
  });

  test('X-Tresor-* headers and body extensions pass through (receipt opt-out, failover)', async () => {
    h.sim.faults.unavailableRoutes = ['eu/tresor/gpt-oss-120b'];
    try {
      const res = await client.chat.completions.create(
        {
          model: 'eu/tresor/gpt-oss-120b',
          messages: [{ role: 'user', content: 'x' }],
          // @ts-expect-error Tresor body extension
          failover: ['lux/tresor/kimi-k2.5'],
        },
        { headers: { 'X-Tresor-Receipt': 'false' } },
      );
      const tresor = (res as unknown as { tresor: Record<string, unknown> }).tresor;
      expect(tresor).toEqual({ requested_route: 'eu/tresor/gpt-oss-120b', routed_model: 'lux/tresor/kimi-k2.5', failover: true });
    } finally {
      h.sim.faults.unavailableRoutes = [];
    }
  });

  test('the real API key and the bodies never reach a log line', async () => {
    await client.chat.completions.create({ model: 'gpt-oss-120b', messages: [{ role: 'user', content: 'TOP-SECRET-PROMPT' }] });
    expect(h.logs.lines.length).toBeGreaterThan(0);
    expect(h.logs.text).not.toContain(REAL_KEY);
    expect(h.logs.text).not.toContain('5e5e5e5e');
    expect(h.logs.text).not.toContain('placeholder');
    expect(h.logs.text).not.toContain('TOP-SECRET-PROMPT');
    expect(h.logs.text).not.toContain('Simulated answer');
  });
});
