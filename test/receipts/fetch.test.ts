import { describe, expect, test } from 'vitest';
import { FetchError } from '../../src/errors/index.js';
import { fetchReceipt, parseReceiptResponse, retryAfterMs, type UpstreamGet } from '../../src/receipts/fetch.js';

/** A scripted router and a virtual clock: sleeping advances time, nothing waits for real. */
function script(answers: ((path: string) => { status: number; headers?: Record<string, string>; body?: string } | Error)[]) {
  let now = Date.parse('2026-11-30T12:00:00Z');
  const sleeps: number[] = [];
  const paths: string[] = [];
  let i = 0;
  const get: UpstreamGet = async (path, init) => {
    paths.push(path);
    expect(init.headers.authorization).toBe('Bearer tr-app');
    const a = (answers[Math.min(i++, answers.length - 1)] as (p: string) => ReturnType<(typeof answers)[number]>)(path);
    if (a instanceof Error) throw a;
    return { status: a.status, headers: a.headers ?? {}, body: Buffer.from(a.body ?? '') };
  };
  const deps = {
    get,
    authorization: 'Bearer tr-app',
    clock: () => new Date(now),
    sleep: async (ms: number) => {
      sleeps.push(ms);
      now += ms;
    },
    random: () => 1,
  };
  return { deps, sleeps, paths, advance: (ms: number) => (now += ms), ended: new Date(now) };
}

const ok = (id: string) => () => ({ status: 200, body: JSON.stringify({ id, receipt: 'a.b.c' }) });

describe('fetchReceipt', () => {
  test('found at once; the id is URL-safe and in the path', async () => {
    const s = script([ok('r-1')]);
    expect(await fetchReceipt('r-1', s.ended, s.deps)).toEqual({ kind: 'found', jws: 'a.b.c', attempts: 1 });
    expect(s.paths).toEqual(['/v1/receipts/r-1']);
  });

  test('503 storm with Retry-After is honoured, then recovers', async () => {
    const s = script([() => ({ status: 503, headers: { 'retry-after': '2' } }), () => ({ status: 503, headers: { 'retry-after': '2' } }), ok('r')]);
    const r = await fetchReceipt('r', s.ended, s.deps);
    expect(r.kind).toBe('found');
    expect(s.sleeps).toEqual([2000, 2000]);
  });

  test('429/5xx without Retry-After back off from 250 ms, doubling, capped at 10 s (full jitter at its top here)', async () => {
    const s = script([() => ({ status: 500 })]);
    const r = await fetchReceipt('r', s.ended, { ...s.deps, policy: { deadlineMs: 60_000 } });
    expect(r).toMatchObject({ kind: 'missing', code: 'ERR_RECEIPT_FETCH_STATUS' });
    expect(s.sleeps.slice(0, 7)).toEqual([250, 500, 1000, 2000, 4000, 8000, 10000]);
    expect(s.sleeps.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(60_000);
  });

  test('404 is retried during the grace window, then the receipt appears', async () => {
    const s = script([() => ({ status: 404 }), () => ({ status: 404 }), ok('r')]);
    expect((await fetchReceipt('r', s.ended, s.deps)).kind).toBe('found');
  });

  test('404 past the grace window is missing', async () => {
    const s = script([() => ({ status: 404 })]);
    const r = await fetchReceipt('r', s.ended, { ...s.deps, policy: { notFoundGraceMs: 3000 } });
    expect(r).toMatchObject({ kind: 'missing', code: 'ERR_RECEIPT_NOT_FOUND' });
    expect(r.attempts).toBeGreaterThan(2);
  });

  test('401 and 403 are final; other 4xx are final', async () => {
    for (const status of [401, 403]) {
      const s = script([() => ({ status })]);
      expect(await fetchReceipt('r', s.ended, s.deps)).toMatchObject({ kind: 'missing', code: 'ERR_RECEIPT_UNAUTHORIZED', attempts: 1 });
    }
    const s = script([() => ({ status: 400 })]);
    expect(await fetchReceipt('r', s.ended, s.deps)).toMatchObject({ kind: 'missing', code: 'ERR_RECEIPT_FETCH_STATUS', attempts: 1 });
  });

  test('network errors are retried until the deadline', async () => {
    const s = script([() => new FetchError('ERR_FETCH_TOO_LARGE', 'too big'), () => new Error('socket hang up')]);
    const r = await fetchReceipt('r', s.ended, { ...s.deps, policy: { deadlineMs: 5000 } });
    expect(r).toMatchObject({ kind: 'missing', code: 'ERR_RECEIPT_FETCH' });
  });

  test('garbage answers are failed with a clear code, never a crash', async () => {
    for (const body of ['not json', '[]', '{"id":"r"}', '{"id":"other","receipt":"a.b.c"}', '{"receipt":42}']) {
      const s = script([() => ({ status: 200, body })]);
      expect(await fetchReceipt('r', s.ended, s.deps)).toMatchObject({ kind: 'failed', code: 'ERR_RECEIPT_RESPONSE_MALFORMED' });
    }
  });

  test('a hostile receipt id never reaches a path', async () => {
    const s = script([ok('x')]);
    await expect(fetchReceipt('../../admin', s.ended, s.deps)).rejects.toMatchObject({ code: 'ERR_RECEIPT_ID_INVALID' });
    expect(s.paths).toEqual([]);
  });

  test('Retry-After: seconds, HTTP date, garbage; bounded to a minute', () => {
    const now = Date.parse('2026-11-30T12:00:00Z');
    expect(retryAfterMs('3', now)).toBe(3000);
    expect(retryAfterMs('Mon, 30 Nov 2026 12:00:05 GMT', now)).toBe(5000);
    expect(retryAfterMs('999999', now)).toBe(60_000);
    expect(retryAfterMs('soon', now)).toBeUndefined();
    expect(retryAfterMs(undefined, now)).toBeUndefined();
  });

  test('parseReceiptResponse accepts the docs shape', () => {
    expect(parseReceiptResponse(Buffer.from('{"id":"r","receipt":"x.y.z"}'), 'r')).toBe('x.y.z');
  });
});
