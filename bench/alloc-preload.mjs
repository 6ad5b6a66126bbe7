// Allocation as a count, not a clock (issue 20, i20g). Loaded into a Node contender with
// BENCH_NODE_ARGS='--import /abs/path/bench/alloc-preload.mjs' and BENCH_ALLOC_DIR=DIR (set both;
// `BENCH_ALLOC_DIR=DIR` alone makes bench/run.mjs add the --import itself). It runs V8's sampling
// heap profiler keeping the samples of objects the GC already collected
// (`includeObjectsCollectedByMinorGC`/`…MajorGC`: every byte allocated, not what is still alive)
// and counts garbage collections by kind (PerformanceObserver 'gc'). On SIGWINCH (ignored by a
// process without this preload) it closes the current window: writes DIR/alloc-<pid>-<n>.json
// ({ gc: {minor, major, incremental, weakcb}, profile }) and opens the next. The JSON scenarios send
// SIGWINCH right before and right after their measured requests (bench/scenarios.mjs), so every
// other window is one measured run; `node bench/alloc-summary.mjs FILE --per N` groups its bytes by
// the nearest `dist/` frame. CPU figures taken with sampling on are not comparable (sampling costs);
// BENCH_ALLOC_SAMPLING_BYTES=0 counts GCs only (profile null).
import { renameSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { join } from 'node:path';
import { PerformanceObserver, constants } from 'node:perf_hooks';

const dir = process.env.BENCH_ALLOC_DIR;
// Mean bytes between samples (V8's default is 32 KiB); 8 KiB resolves the receipt path's small sites.
// BENCH_ALLOC_SAMPLING_BYTES=0: no sampling, GCs counted only (a run whose CPU figures stay comparable).
const interval = Number(process.env.BENCH_ALLOC_SAMPLING_BYTES ?? 8192);
if (dir) {
  const session = interval > 0 ? new Session() : undefined;
  session?.connect();
  const post = (method, params = {}) =>
    new Promise((resolve, reject) => (session ? session.post(method, params, (err, res) => (err ? reject(err) : resolve(res))) : resolve(undefined)));
  const KINDS = { [constants.NODE_PERFORMANCE_GC_MINOR]: 'minor', [constants.NODE_PERFORMANCE_GC_MAJOR]: 'major', [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental', [constants.NODE_PERFORMANCE_GC_WEAKCB]: 'weakcb' };
  let gc = { minor: 0, major: 0, incremental: 0, weakcb: 0 };
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const k = KINDS[e.detail?.kind ?? e.kind];
      if (k) gc[k]++;
    }
  }).observe({ entryTypes: ['gc'] });
  const start = () => (interval > 0 ? post('HeapProfiler.startSampling', { samplingInterval: interval, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true }) : undefined);
  const stop = async () => (interval > 0 ? (await post('HeapProfiler.stopSampling')).profile : null);
  await post('HeapProfiler.enable');
  await start();
  let n = 0;
  let busy = Promise.resolve();
  process.on('SIGWINCH', () => {
    busy = busy.then(async () => {
      const profile = await stop();
      const counts = gc;
      gc = { minor: 0, major: 0, incremental: 0, weakcb: 0 };
      await start();
      const file = join(dir, `alloc-${process.pid}-${++n}.json`);
      writeFileSync(`${file}.tmp`, JSON.stringify({ pid: process.pid, window: n, gc: counts, profile }));
      // Renamed into place, so a reader never sees half a file.
      renameSync(`${file}.tmp`, file);
    });
  });
}
