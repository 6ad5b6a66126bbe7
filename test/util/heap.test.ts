import v8 from 'node:v8';
import { afterEach, describe, expect, test, vi } from 'vitest';
import { applyArrayBufferSweeping, applyHeapGrowing } from '../../src/util/heap.js';

describe('the daemon heap growing factor (memory.heap_growing_percent)', () => {
  afterEach(() => vi.restoreAllMocks());

  test('a percentage sets V8 --heap-growing-percent; 0 leaves V8 its own factor', () => {
    const set = vi.spyOn(v8, 'setFlagsFromString').mockImplementation(() => undefined);
    expect(applyHeapGrowing(20)).toBe('--heap-growing-percent=20');
    expect(set).toHaveBeenCalledWith('--heap-growing-percent=20');
    set.mockClear();
    expect(applyHeapGrowing(0)).toBeUndefined();
    expect(set).not.toHaveBeenCalled();
  });

  test('never passes V8 anything but an integer in range', () => {
    const set = vi.spyOn(v8, 'setFlagsFromString').mockImplementation(() => undefined);
    for (const bad of [-1, 2.5, 301, Number.NaN]) expect(() => applyHeapGrowing(bad)).toThrow(RangeError);
    expect(set).not.toHaveBeenCalled();
  });
});

describe('where V8 sweeps dead ArrayBuffers (memory.concurrent_array_buffer_sweeping)', () => {
  afterEach(() => vi.restoreAllMocks());

  test('false (the default) turns V8 concurrent sweeping off; true leaves V8 its own', () => {
    const set = vi.spyOn(v8, 'setFlagsFromString').mockImplementation(() => undefined);
    expect(applyArrayBufferSweeping(false)).toBe('--no-concurrent-array-buffer-sweeping');
    expect(set).toHaveBeenCalledWith('--no-concurrent-array-buffer-sweeping');
    expect(set).toHaveBeenCalledTimes(1);
    set.mockClear();
    expect(applyArrayBufferSweeping(true)).toBeUndefined();
    expect(set).not.toHaveBeenCalled();
  });
});
