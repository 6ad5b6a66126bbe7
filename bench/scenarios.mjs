// The scenarios of issue 7. A forwarding scenario runs once per contender per round (A B C D, A B
import { request } from 'undici';
// C D, ...) and returns one metrics object per run; a micro scenario runs once (one core).
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { measureProcess, settledRssKb } from './procfs.mjs';
import { allocFigures, closeAllocWindow } from './alloc.mjs';
import { chatOnce, clientFor, modelsOnce, runJson, runStreams, uploadOnce } from './load.mjs';
import { median, percentile } from './report.mjs';

const MB = 1024 * 1024;
const ROOT = new URL('../', import.meta.url).pathname;

/**
 * Warm the client pool and the contender's upstream pool up to the scenario's concurrency
 * (unmeasured) with `GET /v1/models` (forwarded, but no receipt to fetch). The first time it
 * ramps up (100, 200, 400, ... concurrent) like a growing client population; later rounds re-warm
 * at full concurrency (keep-alive connections may have expired while the other contenders ran).
 * Then a few chat completions warm the measured path (BENCH_WARM_CHATS: how many, the first time). Records
 * the number of failed requests. `target` (a contender process, shared by the scenarios) is first
 * warmed up once with warmProcess.
 */
async function warm(state, concurrency, target, quick) {
  let errors = target ? await warmProcess(target, quick) : 0;
  let c = state.warmed ? concurrency : Math.min(100, concurrency);
  for (;;) {
    const r = await runJson(state.client, { count: c, concurrency: c, maxMs: 60_000, once: modelsOnce });
    errors += r.errors;
    if (c === concurrency) break;
    c = Math.min(concurrency, c * 2);
  }
  // BENCH_WARM_CHATS=N: N chat completions the first time instead.
  const chats = Number(process.env.BENCH_WARM_CHATS) || Math.min(Math.max(concurrency, 20), 100);
  if (!state.warmed) errors += (await runJson(state.client, { count: chats, concurrency: Math.min(concurrency, 100), maxMs: 120_000 })).errors;
  state.warmed = true;
  state.warmErrors = (state.warmErrors ?? 0) + errors;
}

/** BENCH_PROCESS_WARM=chats,streams (default 3000,100, with --quick 0,0: none): see warmProcess. */
const processWarm = (quick) => (process.env.BENCH_PROCESS_WARM ?? (quick ? '0,0' : '3000,100')).split(',').map(Number);

/**
 * A contender process's first warm-up, once before its first measured round in any JSON or SSE
 * scenario (unmeasured): 3,000 chat completions at concurrency 16 and 100 SSE streams at 50, so
 * that every contender's hot path is compiled by the JIT (V8 compiles on other threads, counted in
 * the own CPU) and its heap has grown to its working size before it is measured. With 20-100 chat
 * completions only (before the fifth round of #20) the rounds were still getting cheaper: the
 * daemon's json-c16 rounds ran 452, 331, 218 µs per request and the passthrough's, with less code
 * to compile, 321, 176, 202. Returns the number of failed requests.
 */
async function warmProcess(target, quick) {
  if (target.processWarmed) return 0;
  target.processWarmed = true;
  const [chats, streams] = processWarm(quick);
  if (!(chats > 0 || streams > 0)) return 0;
  const client = clientFor(target, 50);
  try {
    const a = chats > 0 ? await runJson(client, { count: chats, concurrency: 16, maxMs: 120_000 }) : { errors: 0 };
    const b = streams > 0 ? await runStreams(client, { count: streams, concurrency: 50, maxMs: 120_000 }) : { errors: 0 };
    return a.errors + b.errors;
  } finally {
    await client.close();
  }
}

function json(concurrency, count, maxMs) {
  return {
    name: `json-c${concurrency}`,
    title: `non-stream chat (1 KB reply), concurrency ${concurrency}`,
    kind: 'forward',
    // Seven rounds where #20's targets are judged (c16, c64): a round's CPU moves by 10-30 % on this VM,
    // and the medians of five still moved across runs by more than most of #20's margins (five until its ninth round).
    rounds: (q) => (q ? 1 : concurrency > 1 ? 7 : 3),
    metrics: [
      { key: 'cpuUsPerReq', label: 'own CPU µs/req', digits: 0, ref: 'passthrough' },
      { key: 'reqPerSec', label: 'req/s', digits: 0, ref: 'passthrough' },
      { key: 'machineBusyPct', label: 'machine busy %', digits: 0 },
      { key: 'p50Ms', label: 'p50 ms', digits: 2, ref: 'direct' },
      { key: 'p99Ms', label: 'p99 ms', digits: 2 },
      { key: 'errors', label: 'errors', digits: 0 },
      { key: 'warmErrors', label: 'warm-up errors', digits: 0 },
      ...RECEIPT_METRICS,
      { key: 'journalP50Ms', label: 'journal wait p50 ms', digits: 3 },
      // Where the own CPU ran (bench/procfs.mjs threadDelta): the main thread, and of it in the kernel; every other thread (GC helpers, libuv pool).
      { key: 'mainUsPerReq', label: 'main thread µs/req', digits: 0 },
      { key: 'mainSysUsPerReq', label: 'of it kernel', digits: 0 },
      { key: 'othersUsPerReq', label: 'other threads µs/req', digits: 0 },
      // write(2)-family and read(2)-family calls per request (/proc/PID/io): counted, not timed, so steady on a busy machine.
      { key: 'writesPerReq', label: 'writes/req', digits: 2 },
      { key: 'readsPerReq', label: 'reads/req', digits: 2 },
      // BENCH_ALLOC_DIR only (bench/alloc-preload.mjs): bytes allocated and scavenges, counted in the contender.
      ...(process.env.BENCH_ALLOC_DIR ? ALLOC_METRICS : []),
    ],
    async run({ target, quick, state, contender, round }) {
      state.client ??= clientFor(target, concurrency);
      if (!state.warmed) await warm(state, concurrency, target, quick);
      const before = target.settle ? await journalHistogram(target.origin) : undefined;
      const alloc = process.env.BENCH_ALLOC_DIR && target.pid !== undefined;
      if (alloc) await closeAllocWindow(target.pid, { discard: true });
      const m = await measureProcess(target.pid, () => runJson(state.client, { count, concurrency, maxMs: quick ? 3_000 : maxMs }), target.settle);
      const allocFile = alloc ? await closeAllocWindow(target.pid) : undefined;
      const after = before ? await journalHistogram(target.origin) : undefined;
      const r = m.result;
      return {
        ...(allocFile ? allocFigures(allocFile, { requests: r.latencies.length, scenario: `json-c${concurrency}`, contender: contender.name, round }) : {}),
        requests: r.latencies.length,
        cpuUsPerReq: m.cpuUs === null ? null : m.cpuUs / Math.max(1, r.latencies.length),
        reqPerSec: r.latencies.length / (r.durationMs / 1000),
        machineBusyPct: m.machineBusyPct,
        p50Ms: median(r.latencies),
        p99Ms: percentile(r.latencies, 99),
        errors: r.errors,
        warmErrors: state.warmErrors,
        ...receiptCounts(m.receipts),
        journalP50Ms: msOrNull(before && after ? histogramP50(before, after) : null),
        ...perRequest(m.threads, r.latencies.length),
        writesPerReq: m.io ? m.io.writes / Math.max(1, r.latencies.length) : null,
        readsPerReq: m.io ? m.io.reads / Math.max(1, r.latencies.length) : null,
      };
    },
    done: (state) => state.client?.close(),
  };
}

const ALLOC_METRICS = [
  { key: 'allocKbPerReq', label: 'KB allocated/req', digits: 1, ref: 'passthrough' },
  { key: 'scavengesPer1k', label: 'scavenges/1k req', digits: 1 },
  { key: 'markCompactsPer1k', label: 'mark-compacts/1k req', digits: 2 },
];

/** The main thread's and the other threads' CPU per request (null without a process). */
function perRequest(threads, n) {
  if (!threads) return { mainUsPerReq: null, mainSysUsPerReq: null, othersUsPerReq: null, threadUs: null };
  const per = (us) => us / Math.max(1, n);
  return { mainUsPerReq: per(threads.mainUs), mainSysUsPerReq: per(threads.mainSysUs), othersUsPerReq: per(threads.othersUs), othersSysUsPerReq: per(threads.othersSysUs), threadUs: threads.byTid };
}

const msOrNull = (seconds) => (typeof seconds === 'number' ? seconds * 1000 : null);

/** The daemon's `tresor_attest_receipt_journal_seconds` buckets (cumulative counts by upper bound), summed over upstreams. */
async function journalHistogram(origin) {
  try {
    const text = await (await request(`${origin}/metrics`)).body.text();
    const buckets = new Map();
    for (const m of text.matchAll(/^tresor_attest_receipt_journal_seconds_bucket\{[^}]*le="([^"]+)"[^}]*\} (\S+)$/gm)) {
      const le = m[1] === '+Inf' ? Infinity : Number(m[1]);
      buckets.set(le, (buckets.get(le) ?? 0) + Number(m[2]));
    }
    return buckets;
  } catch {
    return undefined;
  }
}

/** The median of what was observed between two scrapes, interpolated inside its bucket (as Prometheus' histogram_quantile). */
function histogramP50(before, after) {
  const les = [...after.keys()].sort((a, b) => a - b);
  const counts = les.map((le) => (after.get(le) ?? 0) - (before.get(le) ?? 0));
  const total = counts[counts.length - 1] ?? 0;
  if (!(total > 0)) return null;
  const rank = total / 2;
  for (let i = 0; i < les.length; i++) {
    if (counts[i] >= rank) {
      const lo = i === 0 ? 0 : les[i - 1];
      const below = i === 0 ? 0 : counts[i - 1];
      if (les[i] === Infinity) return lo;
      return lo + ((les[i] - lo) * (rank - below)) / Math.max(1, counts[i] - below);
    }
  }
  return null;
}

/** Receipts the daemon recorded during a run: verified, and anything else (failed, missing, ...). */
const receiptCounts = (d) =>
  d ? { receiptsVerified: d.verified, receiptsNotVerified: d.failed + d.missing + d.unverifiable + d.dropped } : { receiptsVerified: null, receiptsNotVerified: null };
const RECEIPT_METRICS = [
  { key: 'receiptsVerified', label: 'receipts verified', digits: 0 },
  { key: 'receiptsNotVerified', label: 'receipts not', digits: 0 },
];

/** The daemon's V8 heap and Buffer ("external") bytes, from its /metrics (prom-client's process metrics). */
async function nodeMemory(origin) {
  try {
    const res = await request(`${origin}/metrics`);
    const text = await res.body.text();
    const get = (name) => Number(new RegExp(`^tresor_attest_${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
    return { heap: get('nodejs_heap_size_used_bytes'), external: get('nodejs_external_memory_bytes') };
  } catch {
    return undefined;
  }
}

async function memoryPerStream(idle, peak, open) {
  if (!idle || !peak || !(open > 0)) return {};
  return { heapKbPerStream: (peak.heap - idle.heap) / 1024 / open, externalKbPerStream: (peak.external - idle.external) / 1024 / open };
}

/**
 * SSE streams. With `own`, the scenario runs on its own simulator (slower chunks, so that every
 * stream is open at once) with contender processes started for it: RSS per open stream is counted
 * from each process's idle RSS, connections included.
 */
function sse(concurrency, count, { own, memory = false } = {}) {
  return {
    name: `sse-c${concurrency}`,
    title: `SSE streams (50 chunks${own ? `, ${own.chunkIntervalMs} ms apart` : ''}), ${concurrency} concurrent${own ? '; contender processes started for this scenario, RSS per open stream over their idle RSS' : ''}`,
    kind: 'forward',
    ...(own ? { own } : {}),
    // Seven rounds at c100, where #20's SSE targets are judged: its rounds spread by up to 2× within one run on this VM
    // (five from #20's sixth round to its eighth, three before).
    rounds: (q) => (q ? 1 : memory ? 2 : concurrency === 100 ? 7 : 3),
    metrics: [
      { key: 'cpuMsPerStream', label: 'own CPU ms/stream', digits: 3, ref: 'passthrough' },
      { key: 'ttfbP50Ms', label: 'TTFB p50 ms', digits: 2, ref: 'direct' },
      { key: 'chunkGapMs', label: 'chunk gap ms', digits: 3, ref: 'direct' },
      { key: 'streamsPerSec', label: 'streams/s', digits: 1 },
      { key: 'machineBusyPct', label: 'machine busy %', digits: 0 },
      ...(memory
        ? [
            { key: 'maxOpen', label: 'max open', digits: 0 },
            { key: 'rssKbPerStream', label: 'RSS KB/stream', digits: 1, ref: 'passthrough' },
            // tresor-attest only (its /metrics): which part of the RSS per stream is V8 heap, and which Buffers.
            { key: 'heapKbPerStream', label: 'of it V8 heap KB', digits: 1 },
            { key: 'externalKbPerStream', label: 'of it Buffers KB', digits: 1 },
          ]
        : []),
      { key: 'errors', label: 'errors', digits: 0 },
      { key: 'warmErrors', label: 'warm-up errors', digits: 0 },
      ...RECEIPT_METRICS,
    ],
    async run({ target, quick, state }) {
      const conc = Math.min(concurrency, count);
      state.client ??= clientFor(target, conc);
      state.idleRss ??= memory && target.pid ? await settledRssKb(target.pid) : null;
      const daemonMemory = memory && target.settle !== undefined;
      state.idleMem ??= daemonMemory ? await nodeMemory(target.origin) : null;
      if (memory && process.env.BENCH_HEAP_SNAPSHOT_DIR && target.pid && !state.idleSnapshot) {
        // The baseline heap snapshot, before any stream (written synchronously by the contender).
        state.idleSnapshot = true;
        process.kill(target.pid, 'SIGUSR2');
        await new Promise((r) => setTimeout(r, 3_000));
      }
      let peakMem;
      await warm(state, conc, memory ? undefined : target, quick);
      const m = await measureProcess(
        target.pid,
        (rss) =>
          runStreams(state.client, {
            count,
            concurrency: conc,
            maxMs: quick ? 5_000 : 60_000,
            onOpen: (n) => {
              if (n !== conc) return;
              rss?.sample();
              if (daemonMemory) peakMem = nodeMemory(target.origin);
              if (process.env.BENCH_HEAP_SNAPSHOT_DIR && target.pid && !state.snapshotTaken) {
                state.snapshotTaken = true;
                process.kill(target.pid, 'SIGUSR2');
              }
            },
          }),
        target.settle,
      );
      const r = m.result;
      const done = r.ttfb.length;
      return {
        streams: done,
        cpuMsPerStream: m.cpuUs === null ? null : m.cpuUs / 1000 / Math.max(1, done),
        ttfbP50Ms: median(r.ttfb),
        chunkGapMs: median(r.chunkGap),
        streamsPerSec: done / (r.durationMs / 1000),
        machineBusyPct: m.machineBusyPct,
        maxOpen: r.maxOpen,
        rssKbPerStream: state.idleRss === null || state.idleRss === undefined ? null : (m.rssPeakKb - state.idleRss) / Math.max(1, r.maxOpen),
        ...(await memoryPerStream(state.idleMem, await peakMem, r.maxOpen)),
        errors: r.errors,
        warmErrors: state.warmErrors,
        ...receiptCounts(m.receipts),
      };
    },
    done: (state) => state.client?.close(),
  };
}

function upload(sizes) {
  const [small, large] = sizes;
  return {
    name: 'upload',
    title: `transcription upload, streamed multipart (${sizes.map((s) => `${s / MB} MB`).join(', ')})`,
    kind: 'forward',
    // Seven rounds (five until #20's ninth round): one 100 MB upload takes about 0.4 s, and a round's MB/s moved by 10-15 % on this VM.
    rounds: (q) => (q ? 1 : 7),
    metrics: [
      { key: 'mbPerSec', label: `MB/s (${large / MB} MB)`, digits: 0, ref: 'passthrough' },
      { key: 'rssDeltaSmallMb', label: `peak RSS +MB (${small / MB} MB)`, digits: 1 },
      { key: 'rssDeltaLargeMb', label: `peak RSS +MB (${large / MB} MB)`, digits: 1 },
      { key: 'cpuMsPerMb', label: 'own CPU ms/MB', digits: 2, ref: 'passthrough' },
      // Where it ran (bench/procfs.mjs threadDelta): the event loop's thread, and every other one (GC helpers, libuv pool; threadUs per thread).
      { key: 'mainMsPerMb', label: 'main thread ms/MB', digits: 2 },
      { key: 'othersMsPerMb', label: 'other threads ms/MB', digits: 2 },
      // The passthrough's row only: SHA-256 of every byte, measured in the bench process after its round (the digest floor).
      { key: 'sha256MsPerMb', label: 'SHA-256 ms/MB', digits: 2 },
    ],
    async run({ target, contender, state, quick }) {
      state.client ??= clientFor(target, 1);
      // Two unmeasured uploads first: no other scenario runs a contender's upload path (nor its
      // upload connections), and without them the rounds were still getting cheaper as they ran
      // (quiet run of 14:29: the passthrough 2.91, 2.52, 2.24, 1.98, 1.76 ms/MB).
      if (!state.warmed && !quick) for (let i = 0; i < 2; i++) await uploadOnce(state.client, large);
      state.warmed = true;
      const out = {};
      for (const size of sizes) {
        const m = await measureProcess(target.pid, () => uploadOnce(state.client, size));
        const key = size === large ? 'Large' : 'Small';
        out[`rssDelta${key}Mb`] = m.rssPeakKb === null ? null : (m.rssPeakKb - m.rssBeforeKb) / 1024;
        if (size === large) {
          out.mbPerSec = size / MB / (m.result / 1000);
          out.cpuMsPerMb = m.cpuUs === null ? null : m.cpuUs / 1000 / (size / MB);
          out.mainMsPerMb = m.threads ? m.threads.mainUs / 1000 / (size / MB) : null;
          out.othersMsPerMb = m.threads ? m.threads.othersUs / 1000 / (size / MB) : null;
          out.threadUs = m.threads?.byTid ?? null;
        }
      }
      // The digest's own price, measured here after the passthrough's round (outside its measured
      // window): a receipt binds the exact bytes, so any design forwards them and hashes every one.
      if (contender.name === 'passthrough') out.sha256MsPerMb = sha256MsPerMb(quick ? 8 : 32);
      return out;
    },
    done: (state) => state.client?.close(),
  };
}

/** CPU ms per MB of SHA-256 over `mb` MB in the app's 64 KiB reads (this process, one core). */
function sha256MsPerMb(mb) {
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  const hash = createHash('sha256');
  const t0 = process.cpuUsage();
  for (let i = 0; i < mb * 16; i++) hash.update(chunk);
  hash.digest();
  const t = process.cpuUsage(t0);
  return (t.user + t.system) / 1000 / mb;
}

/** First request on a new connection (the contender opens a new upstream TLS connection) vs later ones. */
const connection = {
  name: 'connection',
  title: 'first request through a freshly started contender (new upstream TLS connection) vs later requests; tresor-attest cold = sent before /readyz (pays the attestation)',
  kind: 'forward',
  fresh: true,
  rounds: (q) => (q ? 1 : 3),
  metrics: [
    { key: 'coldMs', label: 'cold first ms', digits: 2 },
    { key: 'firstMs', label: 'first (ready) ms', digits: 2, ref: 'direct' },
    { key: 'firstCpuMs', label: 'own CPU ms (first)', digits: 0 },
    { key: 'laterP50Ms', label: 'later p50 ms', digits: 2, ref: 'direct' },
    { key: 'readyMs', label: 'start→ready ms', digits: 0 },
  ],
  async run({ target, contender, sim, dir, quick }) {
    const client = clientFor(target, 1);
    const first = await measureProcess(target.pid, () => chatOnce(client));
    const firstMs = first.result;
    const later = [];
    for (let i = 0; i < (quick ? 5 : 30); i++) later.push(await chatOnce(client));
    await client.close();
    let coldMs = null;
    if (contender.startCold) {
      const cold = await contender.startCold(sim, dir);
      const c = clientFor(cold, 1);
      try {
        coldMs = await chatOnce(c);
      } finally {
        await c.close();
        await cold.stop();
      }
    }
    return { coldMs, firstMs, firstCpuMs: first.cpuUs === null ? null : first.cpuUs / 1000, laterP50Ms: median(later), readyMs: target.readyMs ?? null };
  },
};

/** Verifications per second on one core, in a fresh process (micro.mjs). */
function micro(kind, title) {
  return {
    name: `verify-${kind}`,
    title,
    kind: 'micro',
    metrics: [
      { key: 'perSec', label: 'verified/s (warm)', digits: 0 },
      { key: 'coldMs', label: 'cold first ms', digits: 2 },
      { key: 'warmMs', label: 'warm ms each', digits: 3 },
    ],
    run({ quick }) {
      const r = spawnSync(process.execPath, [`${ROOT}bench/micro.mjs`, kind, quick ? '150' : '2000'], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`micro ${kind}: ${r.stderr}`);
      const m = JSON.parse(r.stdout.trim().split('\n').pop());
      return { perSec: m.perSec, coldMs: m.coldMs, warmMs: 1000 / m.perSec, ops: m.ops };
    },
  };
}

/** In run order; `quick` is the ~10 s smoke run (--quick): the same scenarios, small counts. */
export const buildScenarios = (quick) => [
  // Bounded in requests and in time: a slow contender (receipts strict) does fewer in the same time.
  json(1, quick ? 40 : 600, 2_500),
  json(16, quick ? 150 : 2500, 2_500),
  json(64, quick ? 200 : 3000, 2_500),
  sse(1, quick ? 2 : 5),
  sse(100, quick ? 20 : 600),
  // Its own simulator with slower chunks, so that all 1,000 streams are open at once, and its own contender
  // processes, whose idle RSS is the base of RSS per stream. Also in --quick: a process that had run the other
  // scenarios could shed more memory during 50 streams than they added (a negative RSS per stream, once in CI).
  sse(1000, quick ? 50 : 1000, { memory: true, own: { chunkIntervalMs: 40 } }),
  upload(quick ? [2 * MB, 8 * MB] : [20 * MB, 100 * MB]),
  connection,
  micro('receipts', 'receipts: verifyReceiptJws + evaluateReceipt (static JWKS, every claim and both digests), one core'),
  micro('snp', 'attestation: SNP router envelope (VCEK chain, report, bundle allowlists, manifest, key binding), one core'),
  micro('nitro', 'attestation: AWS Nitro documents (test/vectors, at their own time), one core'),
];
