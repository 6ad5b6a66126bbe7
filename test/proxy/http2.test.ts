import { openStream } from '../helpers/open-stream.js';
import OpenAI from 'openai';
import { afterEach, describe, expect, test } from 'vitest';
import { startHarness, type Harness } from '../helpers/harness.js';

/**
 * HTTP/2 to the router when it offers it (the simulator offers h2 and http/1.1 by default,
 * only http/1.1 with `http1Only`): JSON, SSE, uploads and receipt fetches work either way, the
 * h2 traffic really is h2, many requests share one pinned connection, and a router whose
 * attestation fails never sees a stream of application data.
 */
const harnesses: Harness[] = [];
afterEach(async () => {
  while (harnesses.length) await harnesses.pop()?.close();
});

type HarnessOptions = NonNullable<Parameters<typeof startHarness>[0]>;

/** The daemon as configured by default (`pool.http2: 'streams'`), closed after the test. */
async function started(opts: HarnessOptions) {
  const h = await startHarness(opts);
  harnesses.push(h);
  return h;
}

/** The daemon with HTTP/2 to the router for every request (`pool.http2: true`), or another `pool.http2`. */
const harness = (opts: HarnessOptions, http2: boolean | 'streams' = true) => started({ ...opts, upstream: { ...opts.upstream, pool: { http2 } } });

const receiptIdOf = (r: unknown) => (r as { tresor: { receipt_id: string } }).tresor.receipt_id;

const MODEL = 'eu/tresor/gpt-oss-120b';

describe('HTTP/2 to the router', () => {
  for (const http1Only of [false, true]) {
    test(`${http1Only ? 'an HTTP/1.1-only router' : 'a router offering h2'}: JSON, SSE and uploads are answered and their receipts fetched and verified`, async () => {
      const h = await harness({ sim: { http1Only } });
      const client = new OpenAI({ baseURL: h.base, apiKey: 'placeholder', maxRetries: 0 });
      const chat = await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'hello' }] });
      const stream = await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'stream please' }], stream: true });
      let text = '';
      let streamId: string | undefined;
      for await (const chunk of stream) {
        text += chunk.choices[0]?.delta?.content ?? '';
        streamId ??= (chunk as unknown as { tresor?: { receipt_id: string } }).tresor?.receipt_id;
      }
      expect(text.length).toBeGreaterThan(0);
      const tr = await client.audio.transcriptions.create({ file: new File([Buffer.alloc(200_000, 7)], 'a.wav', { type: 'audio/wav' }), model: 'whisper-large-v3' });
      const ids = [(chat as unknown as { tresor: { receipt_id: string } }).tresor.receipt_id, streamId as string, (tr as unknown as { tresor: { receipt_id: string } }).tresor.receipt_id];
      for (const id of ids) {
        const v = await fetch(`${h.origin}/receipts/${id}?wait=10`);
        expect(await v.json()).toMatchObject({ status: 'done', verdict: 'verified', receipt_id: id });
      }
      const h2 = Object.fromEntries(h.sim.h2RequestCounts);
      if (http1Only) expect(h2).toEqual({});
      else {
        expect(h2['/v1/chat/completions']).toBe(2);
        // A streamed upload takes an HTTP/1.1 connection of its own (see the test below).
        expect(h2['/v1/audio/transcriptions']).toBeUndefined();
        expect(h.sim.requestCounts.get('/v1/audio/transcriptions')).toBe(1);
        // Every receipt fetch rides the pinned h2 connection too.
        expect(h2['/v1/receipts']).toBe(h.sim.requestCounts.get('/v1/receipts'));
        expect(h2['/v1/receipts']).toBeGreaterThanOrEqual(3);
      }
    });
  }

  test('a streamed upload does not wait for the streams in flight on the shared h2 connection: it goes over an HTTP/1.1 connection of its own', async () => {
    const h = await harness({});
    const client = new OpenAI({ baseURL: h.base, apiKey: 'placeholder', maxRetries: 0 });
    await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'warm' }] });
    h.sim.faults.chunkDelayMs = 250;
    const running = await openStream(client, MODEL);
    // undici writes a streamed body only when nothing else is in flight on its connection: on the
    // shared h2 connection this upload waited for the whole stream (~3 s here).
    const tr = await client.audio.transcriptions.create({ file: new File([Buffer.alloc(1_000_000, 7)], 'a.wav', { type: 'audio/wav' }), model: 'whisper-large-v3' });
    expect(running.ended()).toBe(false);
    await running.drained;
    expect(h.sim.h2RequestCounts.get('/v1/audio/transcriptions')).toBeUndefined();
    expect(h.sim.requestCounts.get('/v1/audio/transcriptions')).toBe(1);
    const id = (tr as unknown as { tresor: { receipt_id: string } }).tresor.receipt_id;
    expect(await (await fetch(`${h.origin}/receipts/${id}?wait=10`)).json()).toMatchObject({ status: 'done', verdict: 'verified' });
  });

  test('many concurrent requests share one pinned h2 connection', async () => {
    const h = await harness({});
    const client = new OpenAI({ baseURL: h.base, apiKey: 'placeholder', maxRetries: 0 });
    // The pool's first connection (a burst while it is still connecting opens one per request, as undici does).
    await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'warm' }] });
    const before = h.sim.connections();
    await Promise.all(Array.from({ length: 24 }, (_, i) => client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: `hello ${i}` }] })));
    expect(h.sim.h2RequestCounts.get('/v1/chat/completions')).toBe(25);
    // 24 concurrent requests and their receipt fetches: no new connection.
    expect(h.sim.connections() - before).toBe(0);
  });

  test('a burst on a cold pool to a router known to speak h2 waits for one connection instead of opening one per request', async () => {
    const h = await harness({});
    const client = new OpenAI({ baseURL: h.base, apiKey: 'placeholder', maxRetries: 0 });
    // Ready: the daemon learnt at start-up (its attestation connection) that the router speaks h2; no request has gone out yet.
    for (let i = 0; i < 200 && !(((await (await fetch(`${h.origin}/readyz`)).json()) as { ready: boolean }).ready); i++) await new Promise((r) => setTimeout(r, 25));
    const before = h.sim.connections();
    await Promise.all(Array.from({ length: 40 }, (_, i) => client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: `burst ${i}` }] })));
    expect(h.sim.h2RequestCounts.get('/v1/chat/completions')).toBe(40);
    expect(h.sim.connections() - before).toBe(1);
  });

  test('a router whose attestation fails sees no stream of application data, over h2 or http/1.1', async () => {
    const h = await harness({ evidenceFaults: { wrongMeasurement: true } });
    const res = await fetch(`${h.base}/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'x' }] }) });
    expect(res.status).toBe(502);
    expect(((await res.json()) as { error: { type: string } }).error.type).toBe('attestation_error');
    // A streamed upload (its own HTTP/1.1 connection) is refused the same way.
    const form = new FormData();
    form.append('model', 'whisper-large-v3');
    form.append('file', new File([Buffer.alloc(300_000, 7)], 'a.wav', { type: 'audio/wav' }));
    const upload = await fetch(`${h.base}/audio/transcriptions`, { method: 'POST', body: form });
    expect(upload.status).toBe(502);
    expect(((await upload.json()) as { error: { type: string } }).error.type).toBe('attestation_error');
    for (const path of h.sim.requestCounts.keys()) expect(path).not.toMatch(/^\/v1\//);
    // The router was reached over h2 (its attestation was fetched on an h2 stream), and that was all.
    expect(h.sim.h2RequestCounts.get('/attestation')).toBeGreaterThanOrEqual(1);
    for (const path of h.sim.h2RequestCounts.keys()) expect(path).toBe('/attestation');
  });

  test('a router GOAWAY: the SSE stream it is answering finishes, the request it did not process goes out again on a new pinned connection', async () => {
    const h = await harness({ sim: { faults: { chunkDelayMs: 30 } } });
    const client = new OpenAI({ baseURL: h.base, apiKey: 'placeholder', maxRetries: 0 });
    const stream = await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'stream while the router goes away' }], stream: true });
    const chunks = stream[Symbol.asyncIterator]();
    let text = (await chunks.next()).value?.choices[0]?.delta?.content ?? '';
    const [connections, chats] = [h.sim.connections(), h.sim.requestCounts.get('/v1/chat/completions') ?? 0];
    h.sim.faults.goawayNextStream = true;
    // No SDK retry (maxRetries 0): the daemon itself sends the refused request again.
    const chat = await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'sent as the router goes away' }] });
    expect(chat.choices[0]?.message.content).toContain('sent as the router goes away');
    for (let c = await chunks.next(); !c.done; c = await chunks.next()) text += c.value.choices[0]?.delta?.content ?? '';
    expect(text).toContain('stream while the router goes away');
    expect(h.sim.goaways()).toBe(1);
    expect((h.sim.requestCounts.get('/v1/chat/completions') ?? 0) - chats).toBe(1);
    expect(h.sim.connections()).toBeGreaterThan(connections);
    const id = (chat as unknown as { tresor: { receipt_id: string } }).tresor.receipt_id;
    expect(await (await fetch(`${h.origin}/receipts/${id}?wait=10`)).json()).toMatchObject({ status: 'done', verdict: 'verified' });
  });
});

describe("HTTP/2 for streams only (pool.http2: 'streams', the default)", () => {
  test('a router offering h2: the stream rides h2; the JSON answer, the upload and every receipt fetch HTTP/1.1; all verified', async () => {
    const h = await started({});
    const client = new OpenAI({ baseURL: h.base, apiKey: 'placeholder', maxRetries: 0 });
    const chat = await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'hello' }] });
    const stream = await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'stream please' }], stream: true });
    let streamId: string | undefined;
    for await (const chunk of stream) streamId ??= (chunk as unknown as { tresor?: { receipt_id: string } }).tresor?.receipt_id;
    const tr = await client.audio.transcriptions.create({ file: new File([Buffer.alloc(200_000, 7)], 'a.wav', { type: 'audio/wav' }), model: 'whisper-large-v3' });
    for (const id of [receiptIdOf(chat), streamId as string, receiptIdOf(tr)]) {
      expect(await (await fetch(`${h.origin}/receipts/${id}?wait=10`)).json()).toMatchObject({ status: 'done', verdict: 'verified', receipt_id: id });
    }
    const h2 = Object.fromEntries(h.sim.h2RequestCounts);
    expect(h.sim.requestCounts.get('/v1/chat/completions')).toBe(2);
    expect(h2['/v1/chat/completions']).toBe(1);
    expect(h2['/v1/audio/transcriptions']).toBeUndefined();
    expect(h2['/v1/receipts']).toBeUndefined();
    expect(h.sim.requestCounts.get('/v1/receipts')).toBeGreaterThanOrEqual(3);
  });

  test('concurrent streams share one pinned h2 connection, opened once whatever the burst', async () => {
    const h = await started({ upstream: { receipts: { mode: 'off' } } });
    const client = new OpenAI({ baseURL: h.base, apiKey: 'placeholder', maxRetries: 0 });
    await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'warm the HTTP/1.1 pool' }] });
    const before = h.sim.connections();
    await Promise.all(
      Array.from({ length: 30 }, async (_, i) => {
        const s = await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: `stream ${i}` }], stream: true });
        for await (const _chunk of s);
      }),
    );
    expect(h.sim.h2RequestCounts.get('/v1/chat/completions')).toBe(30);
    expect(h.sim.connections() - before).toBe(1);
  });

  test('a router whose attestation fails sees no stream: a stream request is refused before any application byte', async () => {
    const h = await started({ evidenceFaults: { wrongMeasurement: true } });
    const res = await fetch(`${h.base}/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'x' }], stream: true }) });
    expect(res.status).toBe(502);
    expect(((await res.json()) as { error: { type: string } }).error.type).toBe('attestation_error');
    for (const path of h.sim.requestCounts.keys()) expect(path).not.toMatch(/^\/v1\//);
    for (const path of h.sim.h2RequestCounts.keys()) expect(path).toBe('/attestation');
  });

  test('pool.http2 false: nothing rides h2, streams included', async () => {
    const h = await harness({}, false);
    const client = new OpenAI({ baseURL: h.base, apiKey: 'placeholder', maxRetries: 0 });
    const stream = await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'stream please' }], stream: true });
    for await (const _chunk of stream);
    expect(h.sim.requestCounts.get('/v1/chat/completions')).toBe(1);
    expect(Object.fromEntries(h.sim.h2RequestCounts)).toEqual({});
  });
});
