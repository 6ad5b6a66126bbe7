import v8 from 'node:v8';

/**
 * The daemon process's heap growing factor (config `memory.heap_growing_percent`): after each full
 * garbage collection, V8 lets the old generation grow to (1 + percent/100) × what survived before
 * the next one. V8's own factor (up to 4× on a fast machine) leaves the garbage of a burst of open
 * streams resident, which is most of the RSS per stream at 1,000 streams (docs/benchmarks.md). V8
 * reads this setting at each collection, so it takes effect when set at start. Process-wide: only
 * `serve` calls it, never the library. 0 leaves V8's own factor.
 */
export function applyHeapGrowing(percent: number): void {
  if (!Number.isInteger(percent) || percent < 0 || percent > 300) throw new RangeError(`heap growing percent must be an integer 0..300, got ${percent}`);
  if (percent > 0) v8.setFlagsFromString(`--heap-growing-percent=${percent}`);
}
