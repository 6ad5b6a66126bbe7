import { describe, expect, test } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { dayOf, lineHash, serialise } from '../../src/audit/format.js';
import { FlatListMemo, frozenWithJson } from '../../src/util/frozen-json.js';

const slow = (d: Date) => d.toISOString().slice(0, 10).replace(/-/g, '');

describe('dayOf: the UTC day of a time, its bounds kept between calls', () => {
  test('the same answer as formatting every time, across midnights, backwards in time and far away', () => {
    const midnight = Date.UTC(2026, 11, 6);
    const times = [midnight - 1, midnight, midnight + 1, midnight + 86_399_999, midnight + 86_400_000, midnight - 1, midnight + 5, 0, -1, -86_400_001, Date.UTC(2099, 0, 1) - 1, Date.UTC(1969, 11, 31, 23, 59), midnight];
    for (let i = 0; i < 500; i++) times.push(midnight + Math.round((Math.random() - 0.5) * 10 * 86_400_000));
    for (const t of times) expect(dayOf(new Date(t)), new Date(t).toISOString()).toBe(slow(new Date(t)));
  });

  test('an invalid date throws as before', () => {
    expect(() => dayOf(new Date(Number.NaN))).toThrow(RangeError);
  });
});

describe('lineHash: SHA-256 of the line in one call', () => {
  test('the same hex as a Hash object over the same text or bytes, whatever the characters', () => {
    const oracle = (l: string | Uint8Array) => createHash('sha256').update(l).digest('hex');
    const chars = ['a', '"', '\\', '\n', 'caf\u00e9', '\u2028', '\u{1F600}', '\ud800', '\udfff', '\u0000', '\u00ff'];
    const lines = ['', 'x'.repeat(64 * 1024)];
    for (let i = 0; i < 500; i++) lines.push(Array.from({ length: Math.floor(Math.random() * 40) }, () => chars[Math.floor(Math.random() * chars.length)]).join(''));
    for (const l of lines) {
      expect(lineHash(l)).toBe(oracle(l));
      expect(lineHash(Buffer.from(l))).toBe(oracle(Buffer.from(l)));
    }
    const bytes = randomBytes(4096);
    expect(lineHash(bytes.subarray(100, 3000))).toBe(oracle(bytes.subarray(100, 3000)));
  });
});

describe('serialise: a member\'s frozen JSON text spliced in, byte for byte the whole serialisation', () => {
  /** The form before (the oracle). */
  const oracle = (seq: number, time: Date, prev: string, record: Record<string, unknown>) => {
    const { seq: _s, time: _t, prev: _p, ...rest } = record;
    return JSON.stringify({ seq, time: time.toISOString(), prev, ...rest });
  };
  const memo = new FlatListMemo<object>();
  const kept = [{ name: 'signature', result: 'pass', detail: 'ES256 "quoted" \\ ,"digests":' }, { name: 'jti', result: 'pass' }];
  memo.keep(kept);
  const frozenChecks = memo.shared(kept.map((c) => ({ ...c }))) as object[];
  const values: unknown[] = [
    frozenChecks, frozenWithJson({ kind: 'snp', digests: ',"digests":' }), [], { a: 1 }, 'x,"digests":{"a":1},"checks":', ',"digests":', '\\', 7, null, true, undefined, () => 1,
    Object.freeze({ toJSON: () => undefined }), { toJSON: () => 'J' },
  ];
  const names = ['type', 'checks', 'digests', 'attestation', 'detail', 'a b', 'seq', 'toJSON', '0', 'next'];

  test('every shape: the spliced form or the whole one, never another text', () => {
    const time = new Date('2026-12-06T12:00:00Z');
    expect(frozenChecks).toBe(kept);
    let splicedShapes = 0;
    for (let i = 0; i < 20_000; i++) {
      const record: Record<string, unknown> = {};
      for (let n = Math.floor(Math.random() * 7); n > 0; n--) record[names[Math.floor(Math.random() * names.length)] as string] = values[Math.floor(Math.random() * values.length)];
      let want: string | Error;
      try {
        want = oracle(i, time, 'p'.repeat(64), record);
      } catch (e) {
        want = e as Error;
      }
      if (want instanceof Error) expect(() => serialise(i, time, 'p'.repeat(64), record)).toThrow();
      else expect(serialise(i, time, 'p'.repeat(64), record), JSON.stringify(Object.keys(record))).toBe(want);
      if (Object.values(record).some((v) => v === frozenChecks)) splicedShapes++;
    }
    expect(splicedShapes).toBeGreaterThan(1000);
  });

  test('a receipt record with shared checks: the same line as before', () => {
    const record = { type: 'receipt', job: 'j', route: 'a,"digests":b', verdict: 'verified', checks: frozenChecks, digests: { request: { computed: 'sha256:00' } }, attestation: frozenWithJson({ kind: 'snp' }), kid: 'k"1' };
    const line = serialise(3, new Date(0), '0'.repeat(64), record);
    expect(line).toBe(oracle(3, new Date(0), '0'.repeat(64), record));
    expect(record.checks).toBe(frozenChecks); // the caller's record is left as it was
  });
});

