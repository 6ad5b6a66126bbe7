// Counted, not timed: what one json-c16 chat completion costs a contender in async resources
// (timers, immediates, nextTicks, promises) and EventEmitter listeners, after a warm-up.
// Usage: node bench/count-forward.mjs [N=4000] [ROOT=this tree]  (ROOT: another built checkout, e.g. main)
// Prints a Markdown table: per request, the passthrough and tresor-attest receipts off (HTTP/1.1).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { spawn } from 'node:child_process';
import { startDaemonProcess, startSim } from './contenders.mjs';
import { clientFor, runJson } from './load.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const n = Number(process.argv[2] ?? 4000);
const root = process.argv[3];
const dir = mkdtempSync(join(tmpdir(), 'tresor-count-'));
process.env.BENCH_COUNT_DIR = dir;
process.env.BENCH_NODE_ARGS = `${process.env.BENCH_NODE_ARGS ?? ''} --import ${join(here, 'count-preload.mjs')}`.trim();

async function snapshot(pid) {
  process.kill(pid, 'SIGUSR2');
  for (let i = 0; i < 100; i++) {
    await sleep(20);
    try {
      const c = JSON.parse(readFileSync(join(dir, `${pid}.json`), 'utf8'));
      rmSync(join(dir, `${pid}.json`));
      return c;
    } catch {}
  }
  throw new Error('no counts from ' + pid);
}

async function startPassthrough(sim) {
  const args = [...process.env.BENCH_NODE_ARGS.split(' '), join(here, 'passthrough.mjs'), sim.url, sim.caFile];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'], env: process.env });
  const origin = await new Promise((resolve) => child.stdout.on('data', (d) => { const m = /listening (\S+)/.exec(String(d)); if (m) resolve(m[1]); }));
  return { origin, pid: child.pid, stop: async () => child.kill('SIGTERM') };
}

async function measure(c) {
  const client = clientFor(c, 16);
  await runJson(client, { count: 1000, concurrency: 16, maxMs: 60_000 });
  const a = await snapshot(c.pid);
  await runJson(client, { count: n, concurrency: 16, maxMs: 120_000 });
  const b = await snapshot(c.pid);
  await client.close();
  const out = {};
  for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) out[k] = ((b[k] ?? 0) - (a[k] ?? 0)) / n;
  return out;
}

const sim = await startSim(dir, 5);
const rows = {};
try {
  const p = await startPassthrough(sim);
  rows.passthrough = await measure(p);
  await p.stop();
  const d = await startDaemonProcess(sim, dir, { receipts: 'off', tag: 'count', ...(root ? { root } : {}) });
  rows[root ? `receipts off (${root})` : 'receipts off'] = await measure(d);
  await d.stop();
} finally {
  await sim.stop();
  rmSync(dir, { recursive: true, force: true });
}
const keys = ['on', 'once', 'PROMISE', 'Timeout', 'Immediate', 'TickObject'];
const names = Object.keys(rows);
console.log(`| per request (counted, ${n} after 1,000 of warm-up) | ${names.join(' | ')} |\n| --- |${names.map(() => ' ---: |').join('')}`);
for (const k of [...keys, ...Object.keys(rows[names[1]]).filter((k) => !keys.includes(k) && rows[names[1]][k] >= 0.05)]) console.log(`| ${k} | ${names.map((r) => (rows[r][k] ?? 0).toFixed(2)).join(' | ')} |`);
