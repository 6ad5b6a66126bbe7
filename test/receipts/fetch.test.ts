import { describe, expect, test, vi } from 'vitest';
import { FetchError } from '../../src/errors/index.js';
import { fetchReceipt, parseAnyReceiptResponse, parseReceiptResponse, retryAfterMs, type UpstreamGet } from '../../src/receipts/fetch.js';

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

describe('parseReceiptResponse reads the usual body without parsing it, and answers exactly what parsing it answers', () => {
  const ID = 'rcpt_7c9e-01:a.b';
  const JWS = 'eyJhbGciOiJFUzI1NiJ9.eyJqdGkiOiI3YzllIn0.c2lnbmF0dXJlLWJ5dGVzLWJ5dGVzLWJ5dGVz_-';
  const USUAL = `{"id":"${ID}","receipt":"${JWS}"}`;

  /** The bytes at a given offset in memory (the word-at-a-time check starts on a 4-byte boundary). */
  const at = (bytes: Buffer, offset: number) => {
    const b = Buffer.alloc(bytes.length + 8);
    bytes.copy(b, offset);
    return new Uint8Array(b.buffer, b.byteOffset + offset, bytes.length);
  };
  const outcome = (f: typeof parseReceiptResponse, body: Uint8Array, id: string): unknown => {
    try {
      return { jws: f(body, id) };
    } catch (e) {
      return { code: (e as { code?: string }).code, message: (e as Error).message };
    }
  };

  test('the usual body is not parsed (JSON.parse is not called); any other shape is', () => {
    const parse = vi.spyOn(JSON, 'parse');
    try {
      expect(parseReceiptResponse(Buffer.from(USUAL), ID)).toBe(JWS);
      expect(parse).not.toHaveBeenCalled();
      expect(parseReceiptResponse(Buffer.from(`{"id": "${ID}", "receipt": "${JWS}"}`), ID)).toBe(JWS);
      expect(parse).toHaveBeenCalledTimes(1);
    } finally {
      parse.mockRestore();
    }
  });

  test('oracle: every one-byte change, insertion and removal of the usual body, at every alignment, gives what the full parse gives', () => {
    const usual = Buffer.from(USUAL);
    const bytes = [0x00, 0x09, 0x0a, 0x1f, 0x20, 0x22, 0x5c, 0x7b, 0x7d, 0x2c, 0x3a, 0x41, 0x2e, 0x7f, 0xe9, 0xff];
    let fast = 0;
    let cases = 0;
    for (let i = 0; i <= usual.length; i++) {
      const variants = [Buffer.concat([usual.subarray(0, i), usual.subarray(i + 1)])];
      for (const c of bytes) {
        variants.push(Buffer.concat([usual.subarray(0, i), Buffer.from([c]), usual.subarray(i + 1)]));
        variants.push(Buffer.concat([usual.subarray(0, i), Buffer.from([c]), usual.subarray(i)]));
      }
      // An escape (which JSON.parse turns into the character), and a non-ASCII character as UTF-8.
      variants.push(Buffer.concat([usual.subarray(0, i), Buffer.from('\\u0041'), usual.subarray(i + 1)]));
      variants.push(Buffer.concat([usual.subarray(0, i), Buffer.from('\u00e9', 'utf8'), usual.subarray(i + 1)]));
      for (const v of variants) {
        for (let offset = 0; offset < 4; offset++) {
          const body = at(v, offset);
          const want = outcome(parseAnyReceiptResponse, body, ID);
          expect(outcome(parseReceiptResponse, body, ID), `${JSON.stringify(v.toString('latin1'))} at +${offset}`).toEqual(want);
          cases++;
          if ('jws' in (want as object)) fast++;
        }
      }
    }
    expect(cases).toBeGreaterThan(10_000);
    expect(fast).toBeGreaterThan(1_000);
  });

  test('oracle: long literals with one control byte anywhere (each word position), and ids that JSON must escape', () => {
    const long = 'A'.repeat(37) + '.' + 'b_-9'.repeat(25) + '.' + 'z'.repeat(19);
    for (let i = 0; i < long.length; i++) {
      for (const c of ['\x00', '\x01', '\x1f', '\x7f']) {
        const body = Buffer.from(`{"id":"${ID}","receipt":"${long.slice(0, i)}${c}${long.slice(i + 1)}"}`, 'latin1');
        for (let offset = 0; offset < 4; offset++) expect(outcome(parseReceiptResponse, at(body, offset), ID)).toEqual(outcome(parseAnyReceiptResponse, at(body, offset), ID));
      }
    }
    for (const id of ['a"b', 'a\\b', 'caf\u00e9', '\u2028', 'x\ud800']) {
      for (const body of [Buffer.from(JSON.stringify({ id, receipt: JWS })), Buffer.from(`{"id":"${id}","receipt":"${JWS}"}`, 'latin1'), Buffer.from(`{"id":"${id}","receipt":"${JWS}"}`)]) {
        expect(outcome(parseReceiptResponse, body, id)).toEqual(outcome(parseAnyReceiptResponse, body, id));
      }
    }
    expect(parseReceiptResponse(Buffer.from(JSON.stringify({ id: 'a"b', receipt: JWS })), 'a"b')).toBe(JWS);
  });
});
