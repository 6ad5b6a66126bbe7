import { describe, expect, test } from 'vitest';
import type { ReceiptJob } from '../../src/receipts/journal.js';
import { baseRecord, recordFor, type Evaluation, type ReceiptFormat } from '../../src/receipts/record.js';

const job: ReceiptJob = {
  job: 'j1', upstream: 'tresor', request_id: 'r1', method: 'POST', route: '/v1/chat/completions', status: 200,
  started_at: '2026-12-06T10:00:00.000Z', ended_at: '2026-12-06T10:00:01.000Z', complete: true, opted_out: false,
  receipt_id: '7c9e6679-7425-40de-944b-e07fc1f90ae7', tresor: { requested_route: 'auto', routed_model: 'm', failover: false },
  request_sha256: 'aa'.repeat(32), response_sha256: 'bb'.repeat(32), request_bytes: 10, response_bytes: 20, app_key: false,
  attestation: { kind: 'snp', evidence: 'e1' },
};

function formatReturning(e: Evaluation): ReceiptFormat {
  return { name: 'jws', path: (id) => `/v1/receipts/${id}`, parse: (body) => Buffer.from(body).toString(), evaluate: async () => e };
}

async function record(e: Evaluation) {
  const deps = {
    fetch: { get: async () => ({ status: 200, headers: {}, body: new Uint8Array(Buffer.from('JWS')) }), clock: () => new Date('2026-12-06T10:00:02Z'), sleep: async () => undefined },
    authorization: 'Bearer k',
    format: formatReturning(e),
  };
  return recordFor(job, deps);
}

describe('recordFor: the audit record of a fetched receipt', () => {
  test('the same members in the same order as the base record spread with the evaluation (audit lines byte for byte as before)', async () => {
    const evaluations: Evaluation[] = [
      { verdict: 'verified', receipt_type: 'message', kid: 'k1', signature_encoding: 'raw', checks: [{ name: 'signature', result: 'pass' }], expected: { request: 'sha256:aa', response: 'sha256:bb' } },
      { verdict: 'failed', code: 'ERR_X', detail: 'why', checks: [], expected: { response: 'sha256:bb' } },
      { verdict: 'unverifiable', code: 'ERR_Y', checks: [], archive: 'OTHER' },
    ];
    for (const e of evaluations) {
      const { expected, archive, ...v } = e;
      const base = { ...baseRecord(job), fetch_attempts: 1, receipt_format: 'jws' };
      const before = {
        ...base,
        ...v,
        digests: {
          request: { ...(expected?.request !== undefined ? { expected: expected.request } : {}), computed: base.digests.request.computed },
          response: { ...(expected?.response !== undefined ? { expected: expected.response } : {}), computed: base.digests.response.computed },
        },
      };
      const got = await record(e);
      expect(JSON.stringify(got.record)).toBe(JSON.stringify(before));
      expect(got.jws).toBe(archive ?? 'JWS');
    }
  });

  test('the parse\'s proof (verbatim) goes with the fetched text it was made for, never into the record nor with a replacement', async () => {
    const plain = await record({ verdict: 'verified', checks: [], verbatim: 'JWS' });
    expect(plain.verbatim).toBe('JWS');
    expect(plain.jws).toBe('JWS');
    expect('verbatim' in plain.record).toBe(false);
    const replaced = await record({ verdict: 'verified', checks: [], verbatim: 'JWS', archive: 'OTHER "text"' });
    expect(replaced.jws).toBe('OTHER "text"');
    expect(replaced.verbatim).toBeUndefined();
    expect('verbatim' in replaced.record).toBe(false);
  });

  test('a verified receipt\'s checks equal to a kept list: the record holds that one list (frozen, its text spliced by the audit log), the same bytes', async () => {
    const checks = () => [{ name: 'signature', result: 'pass', detail: 'ES256 (raw r||s)' }, { name: 'jti', result: 'pass' }] as Evaluation['checks'];
    const first = await record({ verdict: 'verified', checks: checks() });
    const second = await record({ verdict: 'verified', checks: checks() });
    expect(second.record.checks).toBe(first.record.checks);
    expect(Object.isFrozen(first.record.checks)).toBe(true);
    expect(JSON.stringify(second.record)).toBe(JSON.stringify(first.record));
    // Other checks, or another verdict: the record's own list.
    const other = await record({ verdict: 'verified', checks: [{ name: 'signature', result: 'pass', detail: 'ES256 (DER)' }] });
    expect(other.record.checks).not.toBe(first.record.checks);
    const failed = checks();
    expect((await record({ verdict: 'failed', code: 'ERR_X', checks: failed })).record.checks).toBe(failed);
  });
});

