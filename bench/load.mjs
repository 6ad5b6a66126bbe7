// The load generator: undici in the bench process. Each function drives one contender for a
// bounded number of requests (and a time cap) and returns raw timings; report.mjs summarises.
import { readFileSync } from 'node:fs';
import { Pool } from 'undici';

export const API_KEY = `tr-${'b7'.repeat(48)}`;
const MODEL = 'eu/tresor/gpt-oss-120b';
const now = () => Number(process.hrtime.bigint()) / 1e6;

/** A client pool to one contender (TLS with the simulator's CA for the direct contender). */
export function clientFor(target, connections) {
  return new Pool(target.origin, {
    connections,
    pipelining: 1,
    keepAliveTimeout: 60_000,
    headersTimeout: 120_000,
    bodyTimeout: 120_000,
    ...(target.origin.startsWith('https:') ? { connect: { ca: readFileSync(target.caFile, 'utf8') } } : {}),
  });
}

const chatBody = (stream) => JSON.stringify({ model: MODEL, stream, messages: [{ role: 'user', content: 'Benchmark prompt: reply with the fixed answer.' }] });
const JSON_BODY = chatBody(false);
const STREAM_BODY = chatBody(true);
const HEADERS = { 'content-type': 'application/json', authorization: `Bearer ${API_KEY}` };

/** Run `count` tasks with at most `concurrency` at once, stopping early after `maxMs`. */
async function pool(count, concurrency, maxMs, task) {
  let next = 0;
  const deadline = now() + maxMs;
  const worker = async () => {
    while (next < count && now() < deadline) await task(next++);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
}

/** One non-stream chat completion; resolves with its latency (ms). */
export async function chatOnce(client) {
  const t0 = now();
  const res = await client.request({ method: 'POST', path: '/v1/chat/completions', headers: HEADERS, body: JSON_BODY });
  const text = await res.body.text();
  if (res.statusCode !== 200) throw new Error(`chat: HTTP ${res.statusCode}: ${text.slice(0, 200)}`);
  return now() - t0;
}

/** `GET /v1/models`: forwarded like any request, but no completion and so no receipt (warm-ups). */
export async function modelsOnce(client) {
  const t0 = now();
  const res = await client.request({ method: 'GET', path: '/v1/models', headers: { authorization: HEADERS.authorization } });
  const text = await res.body.text();
  if (res.statusCode !== 200) throw new Error(`models: HTTP ${res.statusCode}: ${text.slice(0, 200)}`);
  return now() - t0;
}

/** Non-stream chat (or `once`) at a fixed concurrency. */
export async function runJson(client, { count, concurrency, maxMs, once = chatOnce }) {
  const latencies = [];
  let errors = 0;
  const t0 = now();
  await pool(count, concurrency, maxMs, async () => {
    try {
      latencies.push(await once(client));
    } catch {
      errors++;
    }
  });
  return { latencies, errors, durationMs: now() - t0 };
}

/** SSE streams at a fixed concurrency: time to first byte, per-chunk gap, open streams. */
export async function runStreams(client, { count, concurrency, maxMs, onOpen }) {
  const ttfb = [];
  const chunkGap = [];
  const total = [];
  let errors = 0;
  let open = 0;
  let maxOpen = 0;
  const t0 = now();
  await pool(count, concurrency, maxMs, async () => {
    const start = now();
    let counted = false;
    try {
      const res = await client.request({ method: 'POST', path: '/v1/chat/completions', headers: HEADERS, body: STREAM_BODY });
      open++;
      counted = true;
      maxOpen = Math.max(maxOpen, open);
      onOpen?.(open);
      let first;
      let last;
      let events = 0;
      let tail = '';
      for await (const chunk of res.body) {
        last = now();
        first ??= last;
        const s = tail + chunk.toString('latin1');
        events += s.split('\n\n').length - 1;
        tail = s.slice(s.lastIndexOf('\n\n') + 2);
      }
      if (res.statusCode !== 200 || events < 50) throw new Error(`stream: HTTP ${res.statusCode}, ${events} events`);
      ttfb.push(first - start);
      chunkGap.push((last - first) / (events - 1));
      total.push(now() - start);
    } catch {
      errors++;
    } finally {
      if (counted) open--;
    }
  });
  return { ttfb, chunkGap, total, errors, maxOpen, durationMs: now() - t0 };
}

function multipart(boundary, fileBytes) {
  return (async function* () {
    yield Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="model"\r\n\r\nwhisper-large-v3\r\n`);
    yield Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="bench.wav"\r\nContent-Type: audio/wav\r\n\r\n`);
    const block = Buffer.alloc(256 * 1024, 0x41);
    for (let sent = 0; sent < fileBytes; sent += block.length) yield sent + block.length <= fileBytes ? block : block.subarray(0, fileBytes - sent);
    yield Buffer.from(`\r\n--${boundary}--\r\n`);
  })();
}

/** One streamed multipart transcription upload of `bytes` bytes of audio. */
export async function uploadOnce(client, bytes) {
  const boundary = 'tresorbenchboundary7';
  const t0 = now();
  const res = await client.request({
    method: 'POST',
    path: '/v1/audio/transcriptions',
    headers: { 'content-type': `multipart/form-data; boundary=${boundary}`, authorization: `Bearer ${API_KEY}` },
    body: multipart(boundary, bytes),
  });
  const json = await res.body.json();
  if (res.statusCode !== 200 || !String(json.text).includes(`${bytes} bytes`)) throw new Error(`upload: HTTP ${res.statusCode}: ${JSON.stringify(json).slice(0, 200)}`);
  return now() - t0;
}
