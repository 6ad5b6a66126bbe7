// SSE c100 counted per stream, contender by contender (issue 20, i20c): the bench's 50-chunk streams
// (bench/load.mjs runStreams, 100 concurrent, 5 ms apart) through each contender in turn, several
// rounds. Per stream: own CPU by thread (noisy on a shared machine), read- and write-family system
// calls (/proc/PID/io); with --strace, every system call by name (`strace -c -f` on the contender
// during the round; the counts are firm, the contender's CPU under strace is not); with --async,
// async resources created by type and GCs (bench/async-count-preload.mjs, loaded into the Node
// contenders; its promise hook costs CPU, so those rounds count, they do not time).
// Usage: node bench/sse-count.mjs [--rounds 3] [--streams 600] [--contenders passthrough,floor-receipts,
//        tresor-attest,tresor-attest-receipts-off] [--strace] [--async] [--alloc DIR]
// --alloc DIR: bench/alloc-preload.mjs in the Node contenders, one window per measured round left as
// DIR/sse-c100-<contender>-r<round>-n<streams>.json (node bench/alloc-summary.mjs FILE: KB per stream).
// BENCH_BASELINE_ROOT=DIR adds `baseline-tresor-attest` (the daemon built in DIR), as in bench/run.mjs;
// BENCH_KEEP_DIR=1 keeps the contenders' logs (e.g. with BENCH_NODE_ARGS='--trace-deopt').
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { chatOnce, clientFor, runJson, runStreams } from './load.mjs';
import { threadDelta, threadTimes } from './procfs.mjs';
import { windowFile } from './windows.mjs';

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    streams: { type: 'string', default: '600' },
    contenders: { type: 'string', default: 'passthrough,floor-receipts,tresor-attest,tresor-attest-receipts-off' },
    strace: { type: 'boolean', default: false },
    async: { type: 'boolean', default: false },
    alloc: { type: 'string' },
  },
});
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const work = mkdtempSync(join(os.tmpdir(), 'tresor-sse-count-'));
const asyncDir = join(work, 'async');
if (args.async) {
  mkdirSync(asyncDir);
  // Set before contenders.mjs is loaded: it reads BENCH_NODE_ARGS when it spawns.
  process.env.BENCH_ASYNC_DIR = asyncDir;
  process.env.BENCH_NODE_ARGS = `${process.env.BENCH_NODE_ARGS ?? ''} --import ${new URL('./async-count-preload.mjs', import.meta.url).pathname}`;
}
if (args.alloc) {
  // bench/alloc-preload.mjs: bytes allocated (sampled, collected objects kept) and GCs, one window per SIGWINCH.
  mkdirSync(args.alloc, { recursive: true });
  process.env.BENCH_ALLOC_DIR = args.alloc;
  process.env.BENCH_NODE_ARGS = `${process.env.BENCH_NODE_ARGS ?? ''} --import ${new URL('./alloc-preload.mjs', import.meta.url).pathname}`;
}
const { CONTENDERS, startSim } = await import('./contenders.mjs');

/** /proc/PID/io: system calls, all threads. */
function io(pid) {
  const text = readFileSync(`/proc/${pid}/io`, 'utf8');
  const n = (k) => Number(new RegExp(`^${k}: (\\d+)$`, 'm').exec(text)?.[1] ?? NaN);
  return { syscr: n('syscr'), syscw: n('syscw') };
}

/** `strace -c -f` on `pid` until stopped: calls by name. */
async function straceOn(pid, file) {
  const p = spawn('strace', ['-c', '-f', '-qq', '-o', file, '-p', String(pid)], { stdio: ['ignore', 'ignore', 'pipe'] });
  const exited = new Promise((r) => p.once('exit', r));
  await sleep(500);
  return {
    stop: async () => {
      p.kill('SIGINT');
      await exited;
      const calls = {};
      for (const line of readFileSync(file, 'utf8').split('\n')) {
        const m = /^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)\s*$/.exec(line);
        if (m) calls[m[2]] = Number(m[1]);
      }
      return calls;
    },
  };
}

const asyncWindow = async (pid) => JSON.parse(readFileSync(await windowFile(pid, asyncDir, 'async'), 'utf8'));

const sim = await startSim(work, 5);
const wanted = args.contenders.split(',');
const targets = [];
const streams = Number(args.streams);
try {
  for (const c of CONTENDERS.filter((c) => wanted.includes(c.name))) {
    if (!c.available(sim, work).ok) continue;
    const t = await c.start(sim, work);
    const client = clientFor(t, 100);
    await runJson(client, { count: 100, concurrency: 16, maxMs: 30_000, once: chatOnce });
    await runStreams(client, { count: 200, concurrency: 100, maxMs: 60_000 });
    await t.settle?.();
    targets.push({ name: c.name, t, client, rows: [] });
  }
  for (let round = 0; round < Number(args.rounds); round++) {
    for (const x of targets) {
      const { pid } = x.t;
      const tr = args.strace ? await straceOn(pid, join(work, `strace-${x.name}-${round}`)) : undefined;
      if (args.async) await asyncWindow(pid);
      if (args.alloc) await windowFile(pid, args.alloc, 'alloc');
      const [th0, io0] = [threadTimes(pid), io(pid)];
      const r = await runStreams(x.client, { count: streams, concurrency: 100, maxMs: 120_000 });
      const counters = await x.t.settle?.();
      if (args.alloc) await sleep(300); // the receipts' audit and archive appends: in this window too
      const [th1, io1] = [threadTimes(pid), io(pid)];
      const aw = args.async ? await asyncWindow(pid) : undefined;
      if (args.alloc) {
        // Named for bench/alloc-summary.mjs (its --per defaults to the stream count in the name).
        const f = await windowFile(pid, args.alloc, 'alloc');
        renameSync(f, join(args.alloc, `sse-c100-${x.name}-r${round + 1}-n${r.ttfb.length}.json`));
      }
      const calls = await tr?.stop();
      const d = threadDelta(pid, th0, th1);
      x.rows.push({ n: r.ttfb.length, errors: r.errors, cpu: d, io: { r: io1.syscr - io0.syscr, w: io1.syscw - io0.syscw }, calls, async: aw, counters });
    }
  }
} finally {
  for (const x of targets) {
    await x.client.close();
    await x.t.stop();
  }
  await sim.stop();
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const out = (s) => process.stdout.write(`${s}\n`);
for (const x of targets) {
  const per = (f) => median(x.rows.map((r) => f(r) / r.n));
  out(`\n${x.name}: ${streams} streams at c100, medians of ${x.rows.length} rounds, per stream (errors ${x.rows.map((r) => r.errors).join('/')})`);
  out(`  own CPU (noisy${args.strace || args.async ? '; not comparable: traced' : ''}): ${(per((r) => r.cpu.mainUs + r.cpu.othersUs) / 1000).toFixed(3)} ms (main ${(per((r) => r.cpu.mainUs) / 1000).toFixed(3)}, of it kernel ${(per((r) => r.cpu.mainSysUs) / 1000).toFixed(3)}; other threads ${(per((r) => r.cpu.othersUs) / 1000).toFixed(3)}); rounds ${x.rows.map((r) => ((r.cpu.mainUs + r.cpu.othersUs) / r.n / 1000).toFixed(3)).join(', ')}`);
  out(`  CPU by thread (µs per stream, tid − pid: per round): ${x.rows.map((r) => JSON.stringify(Object.fromEntries(Object.entries(r.cpu.byTid).map(([k, v]) => [k, Math.round(v / r.n)]).filter(([, v]) => v > 0)))).join(' ')}`);
  out(`  /proc io: read-family ${per((r) => r.io.r).toFixed(1)}, write-family ${per((r) => r.io.w).toFixed(1)} calls`);
  if (args.strace) {
    const names = [...new Set(x.rows.flatMap((r) => Object.keys(r.calls ?? {})))].sort();
    out(`  syscalls: ${names.map((k) => [k, per((r) => r.calls?.[k] ?? 0)]).filter(([, v]) => v >= 0.05).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v.toFixed(2)}`).join(', ')}`);
  }
  if (args.async) {
    const types = [...new Set(x.rows.flatMap((r) => Object.keys(r.async?.inits ?? {})))].sort();
    const sites = x.rows.at(-1).async?.promiseSites;
    if (sites) out(`  promises by site (last round, per stream): ${Object.entries(sites).map(([k, v]) => [k, v / x.rows.at(-1).n]).filter(([, v]) => v >= 0.5).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v.toFixed(1)}`).join('; ')}`);
    out(`  async resources: ${types.map((k) => [k, per((r) => r.async?.inits?.[k] ?? 0)]).filter(([, v]) => v >= 0.05).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v.toFixed(2)}`).join(', ')}; GCs per 1k streams ${(per((r) => r.async?.gc ?? 0) * 1000).toFixed(1)}`);
  }
  if (x.rows[0]?.counters) out(`  receipts: ${JSON.stringify(x.rows.at(-1).counters)}`);
}
if (process.env.BENCH_KEEP_DIR) out(`\nkept ${work} (contender logs)`);
else rmSync(work, { recursive: true, force: true });
