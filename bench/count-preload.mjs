// Diagnostic preload (bench/count-forward.mjs loads it into the contenders): counts, per process, the
// async resources created by type (Timeout, Immediate, TickObject, PROMISE, ...) and the EventEmitter
// listeners added (`on`/`addListener` and `once`). SIGUSR2 writes the counts so far to
// $BENCH_COUNT_DIR/<pid>.json (synchronously), so a driver can take deltas around measured requests.
import { createHook } from 'node:async_hooks';
import { EventEmitter } from 'node:events';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

const counts = { on: 0, once: 0 };
createHook({ init: (_id, type) => void (counts[type] = (counts[type] ?? 0) + 1) }).enable();
const { on, once } = EventEmitter.prototype;
EventEmitter.prototype.on = EventEmitter.prototype.addListener = function (...a) {
  counts.on++;
  return on.apply(this, a);
};
EventEmitter.prototype.once = function (...a) {
  counts.once++;
  return once.apply(this, a);
};
process.on('SIGUSR2', () => writeFileSync(join(process.env.BENCH_COUNT_DIR ?? '/tmp', `${process.pid}.json`), JSON.stringify(counts)));
