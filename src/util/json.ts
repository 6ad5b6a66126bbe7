import { MalformedError } from '../errors/index.js';
import { describe } from './bytes.js';

/**
 * JSON text (or an already-parsed value) as a plain object, with a size bound; anything else is
 * a MalformedError with the caller's code.
 */
export function parseJsonObject(input: unknown, opts: { code: string; what: string; maxBytes: number }): Record<string, unknown> {
  let value = input;
  if (typeof input === 'string' || input instanceof Uint8Array) {
    const text = typeof input === 'string' ? input : Buffer.from(input).toString('utf8');
    if (text.length > opts.maxBytes) throw new MalformedError(opts.code, `expected ${opts.what} of at most ${opts.maxBytes} bytes, got ${text.length}`);
    try {
      value = JSON.parse(text) as unknown;
    } catch {
      throw new MalformedError(opts.code, `expected ${opts.what} to be JSON, got text that does not parse`);
    }
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new MalformedError(opts.code, `expected ${opts.what} to be a JSON object, got ${describe(value)}`);
  }
  return value as Record<string, unknown>;
}
