// What the daemon's watch of an SSE stream costs per relayed chunk, counted and timed outside the
// bench's noise: the receipt observer (response SHA-256 and the receipt id's extractor) and the
// `[DONE]` holder, over the simulator's 50-chunk stream (53 chunks: role, 50 pieces, the finish
// chunk with its `tresor` block, `[DONE]`), each chunk a fresh Buffer as undici hands them over.
// Counts (firm): calls per chunk into Buffer and Hash methods, bytes of V8 heap allocated per
// chunk and per stream (the young generation's growth, no collection in between). Times: ns per
// chunk, best of several runs. Usage: node --expose-gc bench/sse-watch.mjs [streams=2000]
// SSE_WATCH_ROOT=DIR measures another built checkout's dist/ (before/after); `node --no-opt
// --no-maglev` gives the unoptimised code's figures (the daemon runs its once-per-stream code so).
import { createHash, Hash } from 'node:crypto';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { getHeapSpaceStatistics } from 'node:v8';

const root = pathToFileURL(`${resolve(process.env.SSE_WATCH_ROOT ?? new URL('..', import.meta.url).pathname)}/`);
const { ExchangeDigest } = await import(new URL('dist/receipts/observer.js', root).href);
const { DoneHolder } = await import(new URL('dist/proxy/sse-hold.js', root).href);

const streams = Number(process.argv[2] ?? 2000);
if (typeof globalThis.gc !== 'function') throw new Error('run with node --expose-gc');

/** The simulator's stream (src/sim/chat.ts, deterministic mode), as bytes per chunk. */
function simStream() {
  const base = { id: 'chatcmpl-0123456789abcdef', object: 'chat.completion.chunk', created: 1765000000, model: 'gpt-oss-120b' };
  const piece = (i) => `word${i} `.repeat(3);
  const block = { tresor: { receipt_id: 'rcpt_0123456789abcdef0123456789abcdef', requested_route: 'eu/tresor/gpt-oss-120b', routed_model: 'gpt-oss-120b', failover: false } };
  const events = [
    { ...base, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }] },
    ...Array.from({ length: 50 }, (_, i) => ({ ...base, choices: [{ index: 0, delta: { content: piece(i) }, finish_reason: null }] })),
    { ...base, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }], ...block },
  ];
  return [...events.map((e) => `data: ${JSON.stringify(e)}\n\n`), 'data: [DONE]\n\n'].map((s) => Buffer.from(s));
}
const STREAM = simStream();
const START = { upstream: 'bench', requestId: 'r', method: 'POST', path: '/v1/chat/completions', tresorHeaders: {}, startedAt: new Date() };
const HEADERS = { 'content-type': 'text/event-stream', 'x-tresor-receipt-id': 'rcpt_header' };
const WHERE = { idHeader: 'x-tresor-receipt-id', bodyBlock: true };
const OUTCOME = { ok: true, requestBytes: 100, responseBytes: 0 };
const REQUEST = Buffer.from(JSON.stringify({ model: 'eu/tresor/gpt-oss-120b', stream: true, messages: [{ role: 'user', content: 'Benchmark prompt' }] }));

/** One stream through the watch, as forward.ts relays it: observer, then the holder, per chunk. */
function watchOne(chunks, withJob) {
  const obs = new ExchangeDigest(START, false, WHERE);
  obs.onRequestChunk(REQUEST);
  obs.onRequestEnd?.(); // forward.ts tells the observer (since i20e)
  obs.onResponseStart(200, HEADERS);
  const holder = new DoneHolder();
  let out = 0;
  for (const c of chunks) {
    obs.onResponseChunk(c);
    out += holder.push(c).length;
  }
  out += holder.release().length;
  if (withJob) {
    const job = obs.toJob(OUTCOME, START.startedAt);
    if (job.receipt_id !== 'rcpt_0123456789abcdef0123456789abcdef') throw new Error(`receipt id not found: ${job.receipt_id}`);
  }
  return out;
}
/** The same chunks through the SHA-256 alone (what the receipt requires at the least). */
function hashOne(chunks) {
  const h = createHash('sha256');
  for (const c of chunks) h.update(c);
  return h;
}

/** Calls into the Buffer/Hash methods the watch uses while fn() runs (prototypes wrapped for one pass). */
function countCalls(fn) {
  const counts = {};
  const wrap = (obj, name, label) => {
    const orig = obj[name];
    obj[name] = function (...a) {
      counts[label] = (counts[label] ?? 0) + 1;
      return orig.apply(this, a);
    };
    return () => (obj[name] = orig);
  };
  const undo = [
    wrap(Buffer.prototype, 'indexOf', 'Buffer#indexOf'),
    wrap(Buffer.prototype, 'lastIndexOf', 'Buffer#lastIndexOf'),
    wrap(Buffer.prototype, 'subarray', 'Buffer#subarray'),
    wrap(Buffer.prototype, 'compare', 'Buffer#compare'),
    wrap(Buffer.prototype, 'equals', 'Buffer#equals'),
    wrap(Buffer.prototype, 'toString', 'Buffer#toString'),
    wrap(Buffer, 'from', 'Buffer.from'),
    wrap(Buffer, 'concat', 'Buffer.concat'),
    wrap(Buffer, 'isBuffer', 'Buffer.isBuffer'),
    wrap(Hash.prototype, 'update', 'Hash#update'),
    wrap(JSON, 'parse', 'JSON.parse'),
  ];
  try {
    fn();
  } finally {
    for (const u of undo) u();
  }
  return counts;
}

const youngUsed = () => getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_used_size;
/** V8 heap bytes allocated by fn() (young generation growth, less the measurement's own; retried if a scavenge intervened). */
function allocated(fn) {
  const once = (f) => {
    for (let attempt = 0; attempt < 20; attempt++) {
      globalThis.gc();
      const before = youngUsed();
      f();
      const after = youngUsed();
      if (after >= before) return after - before;
    }
    return NaN;
  };
  const empty = Math.min(...Array.from({ length: 5 }, () => once(() => undefined)));
  return Math.min(...Array.from({ length: 5 }, () => once(fn))) - empty;
}

/** Best of 7 runs of fn(reps, setup()), ns per rep (setup untimed). */
function timeNs(fn, reps, setup = () => undefined) {
  let best = Infinity;
  for (let r = 0; r < 7; r++) {
    const arg = setup();
    const t0 = process.hrtime.bigint();
    fn(reps, arg);
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / reps);
  }
  return best;
}

const fresh = STREAM.map((c) => Buffer.from(c));
const n = STREAM.length;
// Warm up (the daemon relays thousands of chunks before a measured round).
for (let i = 0; i < streams; i++) watchOne(fresh, true);
for (let i = 0; i < streams; i++) hashOne(fresh).digest();

const open = () => {
  const obs = new ExchangeDigest(START, false, WHERE);
  obs.onResponseStart(200, HEADERS);
  return { obs, holder: new DoneHolder() };
};
const relay = (w, from, to) => {
  for (let i = from; i < to; i++) {
    w.obs.onResponseChunk(fresh[i]);
    w.holder.push(fresh[i]);
  }
};
const copies = STREAM.map((c) => Buffer.from(c));
const streamCalls = countCalls(() => watchOne(copies, true));
const plainCalls = countCalls(() => relay(open(), 0, n - 2));
// Allocation: a whole stream with its job; the 51 chunks before the finish chunk alone; the finish chunk and [DONE].
const streamBytes = allocated(() => watchOne(fresh, true));
const opened = Array.from({ length: 40 }, open);
let k = 0;
const plainBytes = allocated(() => relay(opened[k++], 0, n - 2));
const finishBytes = allocated(() => relay(opened[k++], n - 2, n));

// Time: the 51 chunks before the finish chunk on opened exchanges (what every chunk costs), and the
// rest of a stream (open the exchange, the finish chunk, [DONE], the journal entry).
const reps = Math.max(200, streams / 4);
const batch = () => Array.from({ length: reps }, open);
const plainNs = timeNs((r, ws) => { for (let i = 0; i < r; i++) relay(ws[i], 0, n - 2); }, reps, batch) / (n - 2);
const watchNs = timeNs((r) => { for (let i = 0; i < r; i++) watchOne(fresh, true); }, reps);
const hashNs = timeNs((r) => { for (let i = 0; i < r; i++) hashOne(fresh).digest(); }, reps) / n;
console.log(JSON.stringify({
  chunks_per_stream: n,
  calls_per_stream: streamCalls,
  calls_per_plain_chunk: Object.fromEntries(Object.entries(plainCalls).map(([k, v]) => [k, v / (n - 2)])),
  heap_bytes_per_stream: streamBytes,
  heap_bytes_per_plain_chunk: +(plainBytes / (n - 2)).toFixed(1),
  heap_bytes_finish_chunk_and_done: finishBytes,
  ns_per_plain_chunk: Math.round(plainNs),
  ns_per_chunk_sha256_only: Math.round(hashNs),
  us_per_stream_once: +((watchNs - plainNs * (n - 2)) / 1000).toFixed(2),
}, null, 1));
