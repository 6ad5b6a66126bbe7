// The journal job, the audit record and the evaluation are built member by member (no conditional
// spreads, which cost ~0.6 µs each): these tests keep the spread forms they replaced as the oracle,
// so that every journal line and audit record stays byte for byte what it was (docs/wire.md §7).
import { randomUUID } from 'node:crypto';
import { describe, expect, test } from 'vitest';
import { createTresorExtractor, type TresorBlock } from '../../src/receipts/extract.js';
import { jobLine, type ReceiptJob } from '../../src/receipts/journal.js';
import { ExchangeDigest } from '../../src/receipts/observer.js';
import { baseRecord, recordFor, recordWithout, type ReceiptFormat } from '../../src/receipts/record.js';
import { evaluateReceipt } from '../../src/receipts/verdict.js';
import { frozenWithJson } from '../../src/util/frozen-json.js';

/** The spread forms before (oracles). */
const oracle = {
  pickTresor(o: Record<string, unknown>): TresorBlock {
    return {
      ...(typeof o.receipt_id === 'string' ? { receipt_id: o.receipt_id } : {}),
      ...(typeof o.requested_route === 'string' ? { requested_route: o.requested_route } : {}),
      ...(typeof o.routed_model === 'string' ? { routed_model: o.routed_model } : {}),
      ...(typeof o.failover === 'boolean' ? { failover: o.failover } : {}),
    };
  },
  job(j: ReceiptJob): ReceiptJob {
    const { receipt_id, tresor, error, extract_error, attestation } = j;
    return {
      job: j.job, upstream: j.upstream, request_id: j.request_id, method: j.method, route: j.route, status: j.status, started_at: j.started_at, ended_at: j.ended_at, complete: j.complete,
      ...(error ? { error } : {}),
      opted_out: j.opted_out,
      ...(receipt_id !== undefined ? { receipt_id } : {}),
      ...(tresor ? { tresor } : {}),
      ...(extract_error ? { extract_error } : {}),
      request_sha256: j.request_sha256, response_sha256: j.response_sha256, request_bytes: j.request_bytes, response_bytes: j.response_bytes, app_key: j.app_key,
      ...(attestation ? { attestation } : {}),
    };
  },
  baseRecord(job: ReceiptJob) {
    const t = job.tresor ?? {};
    return {
      type: 'receipt', job: job.job, upstream: job.upstream, request_id: job.request_id, method: job.method, route: job.route, status: job.status, exchange_at: job.started_at,
      ...(t.requested_route !== undefined ? { route_requested: t.requested_route } : {}),
      ...(t.routed_model !== undefined ? { route_served: t.routed_model } : {}),
      ...(t.failover !== undefined ? { failover: t.failover } : {}),
      ...(typeof job.receipt_id === 'string' ? { receipt_id: job.receipt_id } : {}),
      verdict: 'missing',
      checks: [],
      digests: { request: { computed: `sha256:${job.request_sha256}` }, response: { computed: `sha256:${job.response_sha256}` } },
      ...(job.attestation ? { attestation: job.attestation } : {}),
    };
  },
};

const blocks: Record<string, unknown>[] = [
  { receipt_id: 'rcpt-1', requested_route: 'auto', routed_model: 'm', failover: false },
  { routed_model: 'm', receipt_id: 'rcpt-2' },
  { failover: true, requested_route: 7, receipt_id: 'rcpt-3' },
  {},
];

test('the tresor block: the same members in the same order', () => {
  for (const b of blocks) {
    const x = createTresorExtractor('json');
    x.push(Buffer.from(JSON.stringify({ id: 'c', tresor: b })));
    expect(JSON.stringify(x.end().tresor)).toBe(JSON.stringify(oracle.pickTresor(b)));
  }
});

describe('the journal job and the records made from it: byte for byte the spread forms', () => {
  /** Jobs through ExchangeDigest.toJob: each optional member present and absent. */
  function jobs(): ReceiptJob[] {
    const out: ReceiptJob[] = [];
    const bodies = [...blocks.map((b) => JSON.stringify({ tresor: b })), 'not json {"tresor"', '{"choices":[]}'];
    for (const body of bodies) {
      for (const [ok, error] of [[true, undefined], [false, 'client aborted']] as const) {
        for (const attestation of [undefined, { kind: 'snp', measurement: 'm', evidence: 'e1' }]) {
          for (const header of [undefined, 'hdr-1']) {
            const d = new ExchangeDigest({ upstream: 'tresor', requestId: randomUUID(), method: 'POST', path: '/v1/chat/completions?stream=false', tresorHeaders: {}, startedAt: new Date() }, false, { idHeader: 'x-tresor-receipt-id', bodyBlock: true });
            d.onRequestChunk(Buffer.from('{}'));
            d.onRequestEnd();
            d.onResponseStart(200, { 'content-type': 'application/json', ...(header ? { 'x-tresor-receipt-id': header } : {}) });
            d.onResponseChunk(Buffer.from(body));
            out.push(d.toJob({ ok, ...(error ? { error } : {}), requestBytes: 2, responseBytes: body.length }, new Date(), attestation));
          }
        }
      }
    }
    return out;
  }

  test('toJob', () => {
    const all = jobs();
    expect(all.some((j) => j.extract_error) && all.some((j) => j.error) && all.some((j) => j.receipt_id === undefined) && all.some((j) => !j.tresor)).toBe(true);
    for (const j of all) expect(JSON.stringify(j)).toBe(JSON.stringify(oracle.job(j)));
  });

  test('baseRecord, recordWithout and the records decided before any fetch', async () => {
    const format = { name: 'jws', path: (id: string) => `/v1/receipts/${id}`, parse: () => 'JWS', evaluate: () => Promise.reject(new Error('not fetched')) } as ReceiptFormat;
    for (const j of [...jobs(), { ...jobs()[0]!, opted_out: true }, { ...jobs()[0]!, receipt_id: 'bad id/..' }]) {
      expect(JSON.stringify(baseRecord(j))).toBe(JSON.stringify(oracle.baseRecord(j)));
      expect(JSON.stringify(recordWithout(j, 'missing', 'ERR_RECEIPT_QUEUE_FULL', 'full'))).toBe(JSON.stringify({ ...oracle.baseRecord(j), verdict: 'missing', code: 'ERR_RECEIPT_QUEUE_FULL', detail: 'full' }));
      const fetchDeps = { get: () => Promise.reject(new Error('down')), clock: () => new Date(), sleep: async () => undefined, policy: { deadlineMs: 0 } };
      const { record } = await recordFor(j, { fetch: fetchDeps, authorization: undefined, format });
      const { verdict, code, detail } = record;
      // A record decided without a fetch: the base record with its verdict, then code and detail (when given).
      expect(JSON.stringify(record)).toBe(JSON.stringify({ ...oracle.baseRecord(j), verdict, ...(code ? { code } : {}), ...(detail ? { detail } : {}) }));
    }
  });

  test('jobLine: JSON.stringify({ op, job }) byte for byte, the pin summary spliced in or not', () => {
    const summary = frozenWithJson({ kind: 'snp', measurement: 'ab'.repeat(48), tag: 't', tls_spki_sha256: 'cd'.repeat(32), bundle_version: 17, freshness: 'nonce-bound', channel: 'bound', test_roots: false, evidence: 'e1' });
    const nested = frozenWithJson({ kind: 'snp', pin_lapsed_in_flight: { at: 't', code: 'ERR_X' } });
    const hostile = frozenWithJson({ detail: 'quote " backslash \\ newline \n \u2028 é \ud800', n: 1.5e-7, none: null, gone: undefined });
    for (const j of jobs()) {
      for (const attestation of [undefined, summary, nested, hostile, { kind: 'snp', tag: 'unfrozen' }]) {
        const job = { ...j, attestation } as ReceiptJob;
        if (attestation === undefined) delete job.attestation;
        expect(jobLine(job)).toBe(JSON.stringify({ op: 'job', job }));
        expect(job.attestation).toBe(attestation); // put back
        // Not the last member (a member added after it): serialised whole, never spliced at the end.
        const later = { ...job, extra: 'after' } as ReceiptJob;
        expect(jobLine(later)).toBe(JSON.stringify({ op: 'job', job: later }));
      }
    }
  });
});

test('the evaluation of a verified receipt: byte for byte the spread form', async () => {
  const hex = (b?: Uint8Array) => (b ? `sha256:${Buffer.from(b).toString('hex')}` : undefined);
  const sha = new Uint8Array(32).fill(7);
  const payloads: Record<string, unknown>[] = [
    { jti: 'r', iat: 1, receipt_type: 'message', request_digest: hex(sha), response_digest: 'sha256:00' },
    { jti: 'r' },
    { receipt_type: 7, request_digest: 5 },
  ];
  for (const payload of payloads) {
    for (const kid of [undefined, 'k1']) {
      for (const expectation of [{}, { receiptId: 'r', requestSha256: sha, responseSha256: sha, exchangeAt: new Date(1000) }]) {
        const receipt = { header: {}, payload, payloadText: JSON.stringify(payload), signingInput: '', signature: new Uint8Array(64), kid, signatureEncoding: 'der' } as unknown as Parameters<typeof evaluateReceipt>[0];
        const v = await evaluateReceipt(receipt, expectation);
        const c = payload;
        const e = expectation as { requestSha256?: Uint8Array; responseSha256?: Uint8Array };
        const before = {
          verdict: v.verdict,
          ...(v.code ? { code: v.code } : {}),
          ...(typeof c.receipt_type === 'string' ? { receipt_type: c.receipt_type } : {}),
          ...(kid ? { kid } : {}),
          signature_encoding: 'der',
          checks: v.checks,
          digests: {
            request: { ...(typeof c.request_digest === 'string' ? { expected: c.request_digest } : {}), ...(e.requestSha256 ? { computed: hex(e.requestSha256) } : {}) },
            response: { ...(typeof c.response_digest === 'string' ? { expected: c.response_digest } : {}), ...(e.responseSha256 ? { computed: hex(e.responseSha256) } : {}) },
          },
        };
        expect(JSON.stringify(v)).toBe(JSON.stringify(before));
      }
    }
  }
});
