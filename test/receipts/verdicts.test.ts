import { randomBytes, randomUUID } from 'node:crypto';
import v8 from 'node:v8';
import vm from 'node:vm';
import { describe, expect, test, vi } from 'vitest';
import { serialise } from '../../src/audit/format.js';
import { checksSpan, summaryJson, VerdictStore, type VerdictSummary } from '../../src/receipts/verdicts.js';
import { FlatListMemo } from '../../src/util/frozen-json.js';
import { topLevelMemberSpan } from '../../src/util/json-member.js';

const hex = (n: number) => randomBytes(n).toString('hex');

/** A verdict shaped like the pipeline's for a verified Tresor receipt (its checks and their details). */
function verified(seq: number): VerdictSummary {
  const key = hex(32);
  return {
    status: 'done',
    request_id: randomUUID(),
    upstream: 'tresor',
    receipt_id: randomUUID(),
    verdict: 'verified',
    checks: [
      { name: 'signature', result: 'pass', detail: 'ES256 (raw r||s)' },
      { name: 'receipt_key', result: 'skip', detail: `trust bundle v17 lists no receipt signing keys: the JWKS of the attested origin (identity ${key})` },
      ...['jti', 'requested_route', 'routed_model', 'failover', 'iat'].map((name) => ({ name, result: 'pass' })),
      { name: 'request_digest', result: 'pass', detail: 'prefixed' },
      { name: 'response_digest', result: 'pass', detail: 'prefixed' },
      { name: 'router_attestation', result: 'pass', detail: `snp ${hex(48)}, tag ${hex(32)}, TLS key ${key}` },
      { name: 'inference_attestation', result: 'skip', detail: 'absent' },
      { name: 'receipt_signature', result: 'skip', detail: "recorded, not checked (context; the key is the JWS header's)" },
    ],
    seq,
  };
}

describe('VerdictStore', () => {
  test('answers by receipt id and by request id, pending then done, a fresh copy each time; drops the oldest past its bound', () => {
    const store = new VerdictStore(4);
    const v = verified(1);
    store.set({ status: 'pending', request_id: v.request_id, upstream: 'tresor', receipt_id: v.receipt_id as string });
    expect(store.get(v.request_id)?.status).toBe('pending');
    store.set(v);
    expect(store.get(v.receipt_id as string)).toEqual(v);
    expect(store.get(v.request_id)).toEqual(v);
    const copy = store.get(v.request_id) as VerdictSummary;
    copy.verdict = 'failed';
    expect(store.get(v.request_id)?.verdict).toBe('verified');
    const [a, b] = [verified(2), verified(3)];
    store.set(a);
    store.set(b);
    expect(store.get(v.request_id)).toBeUndefined();
    expect(store.get(a.request_id)).toEqual(a);
    expect(store.get(b.receipt_id as string)).toEqual(b);
  });

  test('drops the oldest key first, as a fresh walk from the first key does, whatever was set again in between', () => {
    // The oracle: the same bound kept by walking from the first key on every eviction.
    const model = new Map<string, string>();
    const store = new VerdictStore(50);
    const ids = Array.from({ length: 120 }, () => randomUUID());
    for (let i = 0; i < 5000; i++) {
      const request_id = ids[Math.floor(Math.random() * ids.length)] as string;
      const receipt_id = Math.random() < 0.5 ? (ids[Math.floor(Math.random() * ids.length)] as string) : undefined;
      const v: VerdictSummary = { status: Math.random() < 0.5 ? 'pending' : 'done', request_id, upstream: `u${i}`, ...(receipt_id && receipt_id !== request_id ? { receipt_id } : {}) };
      store.set(v);
      for (const key of v.receipt_id ? [v.receipt_id, request_id] : [request_id]) {
        model.delete(key);
        model.set(key, v.upstream);
      }
      while (model.size > 50) model.delete(model.keys().next().value as string);
      if (i % 50 === 0) for (const id of ids) expect(store.get(id)?.upstream, `after ${i}`).toBe(model.get(id));
    }
  });

  test('a full store evicts without starting a walk over its keys each time (each walk passes every deleted slot)', () => {
    const store = new VerdictStore(1000);
    const keys = vi.spyOn(Map.prototype, 'keys');
    try {
      for (let i = 0; i < 5000; i++) store.set({ status: 'pending', request_id: `q${i}`, upstream: 'tresor', receipt_id: `r${i}` });
      expect(keys.mock.calls.length).toBeLessThan(5);
    } finally {
      keys.mockRestore();
    }
    expect(store.get('q4999')?.status).toBe('pending');
    expect(store.get('q4499')).toBeUndefined();
    expect(store.get('q4500')?.status).toBe('pending');
  });

  test('a waiter is woken when the verdict lands', async () => {
    const store = new VerdictStore();
    const v = verified(1);
    const waiting = store.wait(v.request_id, 5_000);
    store.set(v);
    await expect(waiting).resolves.toEqual(v);
  });

  // Every full garbage collection marks the live heap again: a full store must not make each one
  // (and so every upload's per-MB cost) several times dearer than in a fresh daemon.
  test('a full store of 10,000 verdicts keeps little of the V8 heap (under 8 MB; ~22 MB as objects)', () => {
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as () => void;
    gc();
    const before = v8.getHeapStatistics().used_heap_size;
    const store = new VerdictStore();
    for (let i = 0; i < 10_000; i++) store.set(verified(i));
    gc();
    const grown = v8.getHeapStatistics().used_heap_size - before;
    expect(store.get('absent')).toBeUndefined();
    expect(grown).toBeLessThan(8 * 1024 * 1024);
  });
});

describe('summaryJson: a done verdict with its checks taken from the audit line of the same record', () => {
  test('the same JSON text as JSON.stringify(summary), whatever the checks hold; the store answers the same', () => {
    const odd = { name: 'x', result: 'fail', code: 'ERR_X', detail: 'a "quoted" \\ back\nslash, caf\u00e9 \u{1F600} \u2026 "checks":[] }' };
    // Members in the order the pipeline writes them (code and detail before checks and seq).
    const { checks: _c, seq: _s, ...head } = verified(8);
    const failed: VerdictSummary = { ...head, verdict: 'failed', code: 'ERR_X', detail: 'why "so"', checks: [odd], seq: 8 };
    for (const s of [verified(7), failed, { ...verified(9), checks: [] }, { ...verified(10), seq: undefined }]) {
      // The audit line of the record the summary comes from: other members around, the chain fields first.
      const record = { type: 'receipt', job: 'j', detail: '"checks":[1]', checks: s.checks, digests: { request: { computed: 'sha256:00' } } };
      const line = serialise(s.seq ?? 1, new Date(), '0'.repeat(64), record);
      const parts = summaryJson(s, record, line);
      expect(Array.isArray(parts)).toBe(true);
      expect((parts as string[]).join('')).toBe(JSON.stringify(s));
      const store = new VerdictStore();
      store.set(s, parts);
      expect(store.get(s.request_id)).toEqual(JSON.parse(JSON.stringify(s)));
    }
  });

  test('shared checks (a kept list: util/frozen-json.ts): their own text, without a search of the line', () => {
    const memo = new FlatListMemo<object>();
    const s = verified(4);
    memo.keep(s.checks as object[]);
    const shared = { ...s, checks: memo.shared(JSON.parse(JSON.stringify(s.checks)) as object[]) as VerdictSummary['checks'] };
    expect(shared.checks).toBe(s.checks);
    // A line the search would refuse: the parts come from the list's text all the same.
    const notALine = { checks: shared.checks };
    for (const v of [shared, { ...shared, seq: undefined }]) {
      const parts = summaryJson(v, notALine, JSON.stringify(notALine));
      expect(Array.isArray(parts)).toBe(true);
      expect((parts as string[]).join('')).toBe(JSON.stringify(v));
    }
  });

  test('a record of another shape: the summary serialised as it is', () => {
    const s = verified(3);
    const line = (r: Record<string, unknown>) => serialise(3, new Date(), '0'.repeat(64), r);
    const nested = { x: { checks: [] }, checks: s.checks };
    expect(summaryJson(s, nested, line(nested))).toBe(JSON.stringify(s));
    const other = { checks: [] };
    expect(summaryJson(s, other, line(other))).toBe(JSON.stringify(s));
    const notALine = { checks: s.checks };
    expect(summaryJson(s, notALine, JSON.stringify(notALine))).toBe(JSON.stringify(s));
  });

  // The general scanner (util/json-member) is the oracle for the two searches.
  test('checksSpan: where the general scanner finds the member, for random records; undefined only off the pipeline shape', () => {
    const words = ['checks', 'digests', 'x', 'name', 'seq', ',"checks":[', '],"digests":', '\\', '"', '\u2028', 'caf\u00e9'];
    const pick = <T>(a: readonly T[]) => a[Math.floor(Math.random() * a.length)] as T;
    const str = () => Array.from({ length: 1 + Math.floor(Math.random() * 4) }, () => pick(words)).join('');
    const scalar = () => pick([str(), 7, -1.5, true, null]);
    const value = (depth: number): unknown => (depth > 2 || Math.random() < 0.5 ? scalar() : Math.random() < 0.5 ? [value(depth + 1), value(depth + 1)] : { [pick(words)]: value(depth + 1), [str()]: value(depth + 1) });
    const check = (odd: boolean) => (odd ? { name: str(), [pick(words)]: value(1) } : { name: str(), result: 'pass', detail: str() });
    let fast = 0;
    for (let i = 0; i < 3000; i++) {
      const shaped = i % 3 === 0;
      // Names before the checks start with `b` (never a name that follows them); after them, in the pipeline's shape, none a check has.
      const record: Record<string, unknown> = {};
      for (let m = Math.floor(Math.random() * 4); m > 0; m--) record[`b${str()}`] = shaped ? scalar() : value(0);
      record.checks = Array.from({ length: Math.floor(Math.random() * 4) }, () => check(!shaped && Math.random() < 0.3));
      if (Math.random() < 0.3) record.gone = undefined;
      for (let m = Math.floor(Math.random() * 4); m > 0; m--) {
        const name = shaped ? pick(['digests', 'x', 'attestation']) : pick(words);
        if (!(name in record) && !['seq', 'time', 'prev'].includes(name)) record[name] = value(0);
      }
      const line = serialise(i, new Date(), '0'.repeat(64), record);
      const span = checksSpan(record, line);
      if (span) {
        fast++;
        expect(line.slice(...span), line).toBe(JSON.stringify(record.checks));
        // (The scanner declines lines with a top-level name written with escapes.)
        const general = topLevelMemberSpan(line, 'checks');
        if (general) expect(span, line).toEqual(general);
      } else expect(shaped && (record.checks as unknown[]).length > 0 && Object.keys(record).at(-1) !== 'checks', line).toBe(false);
    }
    expect(fast).toBeGreaterThan(1000);
  });

  test('a next member whose name is not plain: the summary serialised as it is (a string ending in `,` closes with `,"`)', () => {
    const s = verified(3);
    // The check's member `x,` with the value `:` reads `"x,":":"`, which holds `,":":` ahead of the member `:` itself.
    const record = { checks: [{ name: 'n', 'x,': ':' }], ':': 1 };
    const line = serialise(3, new Date(), '0'.repeat(64), record);
    expect(checksSpan(record, line)).toBeUndefined();
    expect(summaryJson({ ...s, checks: record.checks as never }, record, line)).toBe(JSON.stringify({ ...s, checks: record.checks }));
  });

  test('the pipeline\'s own records take the two searches (not the fallback)', () => {
    const s = verified(5);
    const record = { type: 'receipt', job: randomUUID(), upstream: 'tresor', request_id: s.request_id, method: 'POST', route: '/v1/chat/completions', status: 200, exchange_at: new Date().toISOString(), route_requested: 'm', route_served: 'm', failover: false, receipt_id: s.receipt_id, verdict: 'verified', code: undefined, checks: s.checks, digests: { request: { expected: 'sha256:00', computed: 'sha256:00' }, response: { computed: 'sha256:11' } }, attestation: { kind: 'snp', checks: [1] }, receipt_jws_sha256: hex(32) };
    const line = serialise(5, new Date(), '0'.repeat(64), record);
    expect(checksSpan(record, line)).toEqual(topLevelMemberSpan(line, 'checks'));
    expect(Array.isArray(summaryJson(s, record, line))).toBe(true);
  });
});
