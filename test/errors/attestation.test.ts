import { describe, expect, test } from 'vitest';
import {
  AttestationError,
  AttestationPolicyError,
  AttestationUnavailableError,
  BundleSignatureInvalid,
  EvidenceMalformedError,
  IdentityTagNotAllowedError,
  MeasurementNotAllowedError,
  ReceiptRejectedError,
  ReportDataMismatchError,
  SPKIMismatchError,
  TCBBelowFloorError,
  toAttestationError,
  attestationErrorOf,
} from '../../src/errors/attestation.js';
import { FetchError, MalformedError, PolicyError, TresorError, VerificationError } from '../../src/errors/index.js';
import { exitCodeFor } from '../../src/cli/exit-codes.js';
import { toHttpError } from '../../src/proxy/errors-to-http.js';

describe('the named AttestationError classes are the taxonomy, mapped in one place', () => {
  test.each([
    ['ERR_ATTEST_MEASUREMENT_NOT_ALLOWED', MeasurementNotAllowedError],
    ['ERR_ATTEST_TAG_NOT_ALLOWED', IdentityTagNotAllowedError],
    ['ERR_ATTEST_TCB_BELOW_FLOOR', TCBBelowFloorError],
    ['ERR_ATTEST_REPORT_DATA_MISMATCH', ReportDataMismatchError],
    ['ERR_ATTEST_SPKI_MISMATCH', SPKIMismatchError],
    ['ERR_BUNDLE_SIGNATURE_INVALID', BundleSignatureInvalid],
    ['ERR_RECEIPT_SIGNATURE', ReceiptRejectedError],
  ] as const)('%s → %s, code, phase, message and detail unchanged, the original as cause', (code, Named) => {
    const original = new VerificationError(code, 'expected X, got Y', { detail: { field: 'REPORT_DATA' } });
    const mapped = toAttestationError(original);
    expect(mapped).toBeInstanceOf(Named);
    expect(mapped).toBeInstanceOf(AttestationError);
    expect(mapped).toBeInstanceOf(TresorError);
    expect(mapped).toMatchObject({ name: Named.name, code, phase: 'verify', message: 'expected X, got Y', detail: { field: 'REPORT_DATA' }, cause: original });
    expect(exitCodeFor(mapped.phase)).toBe(exitCodeFor(original.phase));
    expect(toAttestationError(mapped)).toBe(mapped);
  });

  test('a policy error keeps every violation; its first code picks the class', () => {
    const e = new PolicyError([
      { code: 'ERR_POLICY_TCB', message: 'REPORTED_TCB below the floor' },
      { code: 'ERR_POLICY_DEBUG', message: 'debug' },
    ]);
    const mapped = toAttestationError(e);
    expect(mapped).toBeInstanceOf(TCBBelowFloorError);
    expect(mapped.violations.map((v) => v.code)).toEqual(['ERR_POLICY_TCB', 'ERR_POLICY_DEBUG']);
    expect(toAttestationError(new PolicyError([{ code: 'ERR_POLICY_VMPL', message: 'vmpl' }]))).toBeInstanceOf(AttestationPolicyError);
  });

  test('codes without a class of their own fall back to their phase; a wrapped TresorError is found through `cause`', () => {
    expect(toAttestationError(new MalformedError('ERR_SNP_SIZE', 'short'))).toBeInstanceOf(EvidenceMalformedError);
    expect(toAttestationError(new FetchError('ERR_ATTEST_FETCH', 'down'))).toBeInstanceOf(AttestationUnavailableError);
    const inner = new VerificationError('ERR_ATTEST_SPKI_MISMATCH', 'other key');
    expect(toAttestationError(new TypeError('fetch failed', { cause: inner }))).toBeInstanceOf(SPKIMismatchError);
    expect(toAttestationError(new Error('boom'))).toMatchObject({ code: 'ERR_INTERNAL', phase: 'internal' });
  });

  test('the proxy answers a mapped error exactly as the original', () => {
    const original = new VerificationError('ERR_ATTEST_MEASUREMENT_NOT_ALLOWED', 'no');
    expect(toHttpError(toAttestationError(original))).toEqual(toHttpError(original));
  });

  test('attestationErrorOf finds the typed error itself or in a cause chain (as openai and LangChain wrap it), not elsewhere', () => {
    const typed = toAttestationError(new PolicyError([{ code: 'ERR_POLICY_MEASUREMENT', message: 'expected one of [..], got ab' }]));
    expect(attestationErrorOf(typed)).toBe(typed);
    const wrapped = new Error('Connection error.', { cause: new TypeError('fetch failed', { cause: typed }) });
    expect(attestationErrorOf(wrapped)).toBe(typed);
    expect(attestationErrorOf(new Error('fetch failed', { cause: new FetchError('ERR_X', 'not typed') }))).toBeUndefined();
    const loop: Error & { cause?: unknown } = new Error('a');
    loop.cause = new Error('b', { cause: loop });
    expect(attestationErrorOf(loop)).toBeUndefined();
    for (const v of [undefined, null, 'ERR_ATTEST_MEASUREMENT_NOT_ALLOWED', 3]) expect(attestationErrorOf(v)).toBeUndefined();
  });
});
