import v8 from 'node:v8';

/**
 * The daemon process's heap growing factor (config `memory.heap_growing_percent`): after each full
 * garbage collection, V8 lets the old generation grow to (1 + percent/100) × what survived before
 * the next one. V8's own factor (up to 4× on a fast machine) leaves the garbage of a burst of open
 * streams resident, which is most of the RSS per stream at 1,000 streams (docs/benchmarks.md). V8
 * reads this setting at each collection, so it takes effect when set at start. Process-wide: only
 * `serve` calls it, never the library. 0 leaves V8's own factor. Returns the flag it set, if any.
 */
export function applyHeapGrowing(percent: number): string | undefined {
  if (!Number.isInteger(percent) || percent < 0 || percent > 300) throw new RangeError(`heap growing percent must be an integer 0..300, got ${percent}`);
  return percent > 0 ? setFlag(`--heap-growing-percent=${percent}`) : undefined;
}

/**
 * Where V8 frees the memory of dead ArrayBuffers (config `memory.concurrent_array_buffer_sweeping`).
 * A request body reaches JavaScript as 64 KiB buffers, which V8 counts as external memory. Swept
 * concurrently (V8's own default, kept with true), the buffers a scavenge found dead stay counted
 * after it. During an upload the count then crosses V8's limit again and again, and each time V8
 * starts a full mark-compact of the daemon's heap on its helper threads: 0.7-1.6 ms of CPU per
 * uploaded MB once it starts. Swept on the main thread as part of each scavenge (false, the
 * default), the count falls at once and those mark-compacts do not happen; interleaved side by
 * side, streams and JSON cost the same either way (docs/benchmarks.md, #20's eleventh round).
 * V8 reads the flag at each sweep, so it takes effect when set at start. Process-wide: only
 * `serve` calls it. Returns the flag it set, if any.
 */
export function applyArrayBufferSweeping(concurrent: boolean): string | undefined {
  return concurrent ? undefined : setFlag('--no-concurrent-array-buffer-sweeping');
}

function setFlag(flag: string): string {
  v8.setFlagsFromString(flag);
  return flag;
}
