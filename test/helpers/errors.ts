import { expect } from 'vitest';
import { TresorError } from '../../src/errors/index.js';

/** The TresorError `f` throws; fails the test if it throws anything else or nothing. */
export function thrown(f: () => unknown): TresorError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(TresorError);
    return e as TresorError;
  }
  throw new Error('expected a rejection');
}

/** The stable code of the TresorError `f` throws; fails the test if it throws anything else or nothing. */
export function code(f: () => unknown): string {
  return thrown(f).code;
}
