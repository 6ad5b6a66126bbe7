import canonicalizeModule from 'canonicalize';
import { MalformedError } from '../errors/index.js';

/**
 * RFC 8785 JSON Canonicalization Scheme (JCS).
 *
 * The serialisation itself is the `canonicalize` package (by an RFC 8785 co-author): keys sorted by
 * UTF-16 code units, ECMAScript number formatting, minimal string escaping. This wrapper first
 * checks that the value is within the I-JSON data model that RFC 8785 §3 requires, because the
 * package silently drops `undefined` members, calls `toJSON`, and stringifies functions as
 * `undefined`; a canonical form must never depend on such accidents:
 *  - only null, booleans, finite numbers, strings, arrays and plain objects;
 *  - no lone UTF-16 surrogates in strings or keys (I-JSON, RFC 7493 §2.1);
 *  - with `integersOnly`, numbers must be safe integers (ACI: "the reference implementation
 *    rejects floats", aci-pinaivu-receipts.md §1.1).
 */
export interface JcsOptions {
  /** Reject non-integer numbers and integers beyond ±(2^53 − 1) (ACI documents). */
  integersOnly?: boolean;
}

/** Nesting bound: ACI and session documents nest at most 4 deep; 64 leaves room and stops stack exhaustion. */
export const MAX_JCS_DEPTH = 64;

/**
 * The package is CommonJS (`module.exports = fn`) while its typings declare an ES default export;
 * under NodeNext the default import is `module.exports` itself. Accept either shape.
 */
type Serialize = (input: unknown) => string | undefined;
const serialize: Serialize =
  typeof canonicalizeModule === 'function'
    ? (canonicalizeModule as Serialize)
    : (canonicalizeModule as unknown as { default: Serialize }).default;

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function fail(path: string, what: string): never {
  throw new MalformedError('ERR_JCS_UNSUPPORTED_VALUE', `expected a JSON value at ${path}, got ${what}`);
}

function check(value: unknown, path: string, depth: number, opts: JcsOptions): void {
  if (depth > MAX_JCS_DEPTH) {
    throw new MalformedError('ERR_JCS_TOO_DEEP', `expected at most ${MAX_JCS_DEPTH} levels of nesting, got more at ${path}`);
  }
  if (value === null || typeof value === 'boolean') return;
  if (typeof value === 'string') {
    if (LONE_SURROGATE.test(value)) fail(path, 'a string with a lone UTF-16 surrogate');
    return;
  }
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) fail(path, `the non-finite number ${String(value)}`);
    if (opts.integersOnly && !Number.isSafeInteger(value)) {
      throw new MalformedError('ERR_JCS_NOT_INTEGER', `expected an integer at ${path} (floats are not allowed here), got ${String(value)}`);
    }
    return;
  }
  if (Array.isArray(value)) {
    value.forEach((v, i) => check(v, `${path}[${i}]`, depth + 1, opts));
    return;
  }
  if (typeof value === 'object') {
    const proto = Object.getPrototypeOf(value) as unknown;
    if (proto !== Object.prototype && proto !== null) fail(path, `an object of class ${(value as object).constructor?.name ?? 'unknown'}`);
    for (const [k, v] of Object.entries(value)) {
      if (LONE_SURROGATE.test(k)) fail(path, 'a member name with a lone UTF-16 surrogate');
      check(v, `${path}.${k}`, depth + 1, opts);
    }
    return;
  }
  fail(path, typeof value);
}

/** The RFC 8785 canonical form of `value` (a string; hash or sign its UTF-8 bytes). */
export function canonicalize(value: unknown, opts: JcsOptions = {}): string {
  check(value, '$', 0, opts);
  const out = serialize(value);
  if (out === undefined) fail('$', 'a value with no JSON form');
  return out;
}

/** UTF-8 bytes of the canonical form. */
export function canonicalBytes(value: unknown, opts: JcsOptions = {}): Uint8Array {
  return new Uint8Array(Buffer.from(canonicalize(value, opts), 'utf8'));
}
