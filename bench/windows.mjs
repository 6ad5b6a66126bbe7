// The count windows of the diagnostic preloads (bench/async-count-preload.mjs, bench/alloc-preload.mjs):
// each SIGWINCH makes the contender write DIR/<prefix>-<pid>-<n>.json for the window since the last one.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Signal `pid` and return the path of the window file it writes into `dir` (a new `prefix-pid-*.json`). */
export async function windowFile(pid, dir, prefix) {
  const before = new Set(readdirSync(dir));
  process.kill(pid, 'SIGWINCH');
  for (let i = 0; i < 500; i++) {
    const f = readdirSync(dir).find((n) => n.startsWith(`${prefix}-${pid}-`) && n.endsWith('.json') && !before.has(n));
    if (f) return join(dir, f);
    await sleep(10);
  }
  throw new Error(`no ${prefix} window from ${pid}: is its preload loaded?`);
}
