// Counted, not timed: what one json-c16 chat completion costs a contender in async resources
// (timers, immediates, nextTicks, promises) and EventEmitter listeners, after a warm-up.
// Usage: node bench/count-forward.mjs [N=4000] [ROOT=this tree]  (ROOT: another built checkout, e.g. main)
// Prints a Markdown table: per request, the passthrough and tresor-attest receipts off (HTTP/1.1).
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawn } from 'node:child_process';
import { startDaemonProcess, startSim } from './contenders.mjs';
import { clientFor, runJson } from './load.mjs';
import { windowFile } from './windows.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const n = Number(process.argv[2] ?? 4000);
const root = process.argv[3];
const dir = mkdtempSync(join(tmpdir(), 'tresor-count-'));
const asyncDir = join(dir, 'async');
mkdirSync(asyncDir);
process.env.BENCH_ASYNC_DIR = asyncDir;
process.env.BENCH_NODE_ARGS = `${process.env.BENCH_NODE_ARGS ?? ''} --import ${join(here, 'async-count-preload.mjs')}`.trim();

/** The counts since the last call (bench/async-count-preload.mjs writes a window per SIGWINCH). */
async function window(pid) {
  const w = JSON.parse(readFileSync(await windowFile(pid, asyncDir, 'async'), 'utf8'));
  return { ...w.listeners, ...w.inits };
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
  await window(c.pid); // the warm-up's window, dropped
  await runJson(client, { count: n, concurrency: 16, maxMs: 120_000 });
  const b = await window(c.pid);
  await client.close();
  const out = {};
  for (const k of Object.keys(b)) out[k] = b[k] / n;
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
