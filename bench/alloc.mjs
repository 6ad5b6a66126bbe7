// Reading what bench/alloc-preload.mjs writes: bytes allocated (V8's sampling heap profiler, collected
// objects included) and garbage collections, per window between two SIGWINCHs.
import { existsSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Windows closed so far, by contender process (the preload numbers them 1, 2, ... for the life of the process). */
const windows = new Map();

/**
 * Close the contender's current allocation window; resolves with its file's path (bounded wait).
 * `discard`: the window was not a measured run (the time between two runs): its file is removed.
 */
export async function closeAllocWindow(pid, { discard = false } = {}) {
  const dir = process.env.BENCH_ALLOC_DIR;
  const n = (windows.get(pid) ?? 0) + 1;
  windows.set(pid, n);
  const file = join(dir, `alloc-${pid}-${n}.json`);
  process.kill(pid, 'SIGWINCH');
  for (const end = Date.now() + 30_000; !existsSync(file); await sleep(20)) {
    if (Date.now() > end) throw new Error(`no allocation window ${file}: is bench/alloc-preload.mjs loaded?`);
  }
  if (discard) rmSync(file);
  return file;
}

/** Every sampled byte of a sampling heap profile, by node (self sizes are already scaled to estimates). */
export function* profileNodes(profile) {
  const stack = [profile.head];
  while (stack.length) {
    const node = stack.pop();
    yield node;
    for (const c of node.children ?? []) stack.push(c);
  }
}

/**
 * The window's totals: KB allocated and scavenges (minor GCs) per 1,000 requests. The file is
 * renamed to DIR/<scenario>-<contender>-r<round>-n<requests>.json (the request count in its name), for
 * `node bench/alloc-summary.mjs`.
 */
export function allocFigures(file, { requests, scenario, contender, round }) {
  const w = JSON.parse(readFileSync(file, 'utf8'));
  let bytes = 0;
  if (w.profile) for (const node of profileNodes(w.profile)) bytes += node.selfSize;
  const named = join(process.env.BENCH_ALLOC_DIR, `${scenario}-${contender}-r${round}-n${requests}.json`);
  renameSync(file, named);
  const n = Math.max(1, requests);
  return { allocKbPerReq: w.profile ? bytes / 1024 / n : null, scavengesPer1k: (1000 * w.gc.minor) / n, markCompactsPer1k: (1000 * w.gc.major) / n, allocFile: named };
}
