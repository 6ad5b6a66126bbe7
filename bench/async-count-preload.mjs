// Counted, not timed (issue 20, i20c, i20k): async resources created in a Node contender, by type
// (Promise, Timeout, Immediate, TickObject, FSREQCALLBACK, TLSWRAP, ...), EventEmitter listeners added
// (`on`/`addListener` and `once`) and garbage collections. Loaded with BENCH_NODE_ARGS='--import
// /abs/path/bench/async-count-preload.mjs' and BENCH_ASYNC_DIR=DIR. On SIGWINCH it writes
// DIR/async-<pid>-<n>.json ({ inits: {type: count}, listeners: {on, once}, gc }) for the window since
// the last signal and starts the next (bench/sse-count.mjs and bench/count-forward.mjs signal around
// each measured run).
// The promise hook costs CPU: figures of a run with it loaded are counts only. BENCH_ASYNC_SITES=1
// also counts each promise by the nearest frame of the daemon's own code (dist/, else node_modules/,
// else the first frame): a stack trace per promise, so far slower still.
import { createHook } from 'node:async_hooks';
import { EventEmitter } from 'node:events';
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PerformanceObserver } from 'node:perf_hooks';

const dir = process.env.BENCH_ASYNC_DIR;
if (dir) {
  let inits = new Map();
  let sites = new Map();
  let gc = 0;
  let listeners = { on: 0, once: 0 };
  const { on, once } = EventEmitter.prototype;
  EventEmitter.prototype.on = EventEmitter.prototype.addListener = function (...a) {
    listeners.on++;
    return on.apply(this, a);
  };
  EventEmitter.prototype.once = function (...a) {
    listeners.once++;
    return once.apply(this, a);
  };
  const bySite = process.env.BENCH_ASYNC_SITES === '1';
  const holder = {};
  const siteOf = () => {
    Error.captureStackTrace(holder, siteOf);
    const frames = holder.stack.split('\n').slice(1);
    const f = frames.find((l) => l.includes('/dist/')) ?? frames.find((l) => l.includes('/node_modules/')) ?? frames[1] ?? '';
    return f.trim().replace(/^at /, '').replace(/\(?file:\/\/\S*?\/(dist|node_modules)\//, '$1/').replace(/:\d+\)?$/, '');
  };
  createHook({
    init(_id, type) {
      inits.set(type, (inits.get(type) ?? 0) + 1);
      if (bySite && type === 'PROMISE') {
        const k = siteOf();
        sites.set(k, (sites.get(k) ?? 0) + 1);
      }
    },
  }).enable();
  new PerformanceObserver((list) => void (gc += list.getEntries().length)).observe({ entryTypes: ['gc'] });
  let n = 0;
  process.on('SIGWINCH', () => {
    const file = join(dir, `async-${process.pid}-${++n}.json`);
    writeFileSync(`${file}.tmp`, JSON.stringify({ pid: process.pid, window: n, gc, inits: Object.fromEntries(inits), listeners, ...(bySite ? { promiseSites: Object.fromEntries(sites) } : {}) }));
    renameSync(`${file}.tmp`, file);
    inits = new Map();
    sites = new Map();
    listeners = { on: 0, once: 0 };
    gc = 0;
  });
}
