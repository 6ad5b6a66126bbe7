import { expect } from 'vitest';
import { TresorError } from '../../src/errors/index.js';

/** The stable code of the TresorError `f` throws; fails the test if it throws anything else or nothing. */
export function code(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(TresorError);
    return (e as TresorError).code;
  }
  throw new Error('expected a rejection');
}
