import { createHash } from 'node:crypto';
import { CompactSign, exportJWK, generateKeyPair, type JWK } from 'jose';
import { beforeAll, describe, expect, test } from 'vitest';
import type { AttestedIdentity } from '../../src/attestation/identity.js';
import { createInferenceCheck } from '../../src/receipts/inference.js';
import { createStaticJwks } from '../../src/receipts/jwks.js';
import { createReceiptKeyPolicy } from '../../src/receipts/key-policy.js';
import { evaluateReceipt, notPassed, verdictFromChecks, type Check, type ReceiptExpectations, type ReceiptHooks } from '../../src/receipts/verdict.js';
import { verifyReceiptJws } from '../../src/receipts/verify.js';
import { createSnpTestPki, mintSnpReport, type SnpTestPki } from '../../src/sim/mint/snp.js';
import { toPem } from '../../src/x509/certificate.js';

type Priv = Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];
let key: Priv;
let jwk: JWK;
let pki: SnpTestPki;
const ID = '7c9e6679-7425-40de-944b-e07fc1f90ae7';
const IAT = Math.floor(Date.now() / 1000);
const sha = (s: string) => new Uint8Array(createHash('sha256').update(s).digest());
const hex = (s: string) => Buffer.from(sha(s)).toString('hex');
const MEASUREMENT = createHash('sha384').update('inference node').digest();

beforeAll(async () => {
  const p = await generateKeyPair('ES256', { extractable: true });
  key = p.privateKey;
  jwk = { ...(await exportJWK(p.publicKey)), kid: 'router-receipt-1', alg: 'ES256' };
  pki = await createSnpTestPki();
});

const expectations: ReceiptExpectations = {
  receiptId: ID,
  tresor: { requested_route: 'auto', routed_model: 'm', failover: false },
  requestSha256: sha('req'),
  responseSha256: sha('res'),
  exchangeAt: new Date(IAT * 1000),
};

async function verdictOf(extra: Record<string, unknown>, hooks: ReceiptHooks = {}, expect: ReceiptExpectations = expectations) {
  const claims = { jti: ID, iat: IAT, requested_route: 'auto', routed_model: 'm', failover: false, request_digest: `sha256:${hex('req')}`, response_digest: `sha256:${hex('res')}`, ...extra };
  const jws = await new CompactSign(Buffer.from(JSON.stringify(claims))).setProtectedHeader({ alg: 'ES256', kid: 'router-receipt-1' }).sign(key);
  const verified = await verifyReceiptJws(jws, { resolveKey: (await createStaticJwks(JSON.stringify({ keys: [jwk] }))).resolve });
  return evaluateReceipt(verified, expect, hooks);
}

const snpBlock = (measurement = MEASUREMENT) => ({
  kind: 'snp',
  report_b64: Buffer.from(mintSnpReport(pki, { measurement, reportData: new Uint8Array(64) })).toString('base64'),
  vcek_chain_pem: `${toPem(pki.vcek)}${toPem(pki.ask)}`,
});
const check = (v: { checks: Check[] }, name: string) => v.checks.find((c) => c.name === name);

describe('the verdict table (docs/wire.md §2.1)', () => {
  test.each<[string, Check[], string, string | undefined]>([
    ['every check passes', [{ name: 'signature', result: 'pass' }, { name: 'jti', result: 'pass' }], 'verified', undefined],
    ['skips (nothing to compare, informational) never count', [{ name: 'signature', result: 'pass' }, { name: 'receipt_signature', result: 'skip' }], 'verified', undefined],
    ['a check that could not run', [{ name: 'signature', result: 'pass' }, { name: 'router_attestation', result: 'unverifiable', code: 'ERR_BUNDLE_FETCH' }], 'unverifiable', 'ERR_BUNDLE_FETCH'],
    ['a failure wins over one that could not run', [{ name: 'router_attestation', result: 'unverifiable', code: 'ERR_BUNDLE_FETCH' }, { name: 'jti', result: 'fail', code: 'ERR_RECEIPT_JTI_MISMATCH' }], 'failed', 'ERR_RECEIPT_JTI_MISMATCH'],
    ['an unverifiable check without a code still gets one', [{ name: 'x', result: 'unverifiable' }], 'unverifiable', 'ERR_RECEIPT_CHECK_UNVERIFIABLE'],
  ])('%s', (_name, checks, verdict, code) => {
    expect(verdictFromChecks(checks)).toEqual({ verdict, ...(code ? { code } : {}) });
  });

  test('notPassed lists every check that is not pass, with its reason', () => {
    expect(notPassed([{ name: 'signature', result: 'pass' }, { name: 'receipt_key', result: 'skip', detail: 'lists none' }, { name: 'iat', result: 'fail', code: 'ERR_RECEIPT_IAT' }])).toEqual(['receipt_key: skip (lists none)', 'iat: fail ERR_RECEIPT_IAT']);
    expect(notPassed(undefined)).toEqual([]);
  });
});

describe('a verdict never says more than was checked', () => {
  test('router evidence nobody could check makes the receipt unverifiable, not verified', async () => {
    const v = await verdictOf({ router_attestation: { schema: 'tresor.attestation/v1' } });
    expect(check(v, 'router_attestation')).toMatchObject({ result: 'unverifiable', code: 'ERR_RECEIPT_ATTESTATION_UNCHECKED' });
    expect(v).toMatchObject({ verdict: 'unverifiable', code: 'ERR_RECEIPT_ATTESTATION_UNCHECKED' });
  });

  test('router evidence whose bundle was unreachable: unverifiable with that code', async () => {
    const v = await verdictOf({ router_attestation: {} }, { verifyRouterAttestation: async () => ({ result: 'unverifiable', code: 'ERR_BUNDLE_FETCH', detail: 'unreachable' }) });
    expect(v).toMatchObject({ verdict: 'unverifiable', code: 'ERR_BUNDLE_FETCH' });
  });

  test('the router evidence hook is given the block exactly as signed, for recognising it by the hash of its bytes', async () => {
    // Written by hand: spacing and key order a re-serialisation would not reproduce.
    const block = '{ "workload": "tresor-router",\n  "schema":"tresor.attestation/v1" }';
    const claims = JSON.stringify({ jti: ID, iat: IAT, requested_route: 'auto', routed_model: 'm', failover: false, request_digest: `sha256:${hex('req')}`, response_digest: `sha256:${hex('res')}` });
    const text = `${claims.slice(0, -1)},"router_attestation":  ${block} }`;
    const jws = await new CompactSign(Buffer.from(text)).setProtectedHeader({ alg: 'ES256', kid: 'router-receipt-1' }).sign(key);
    const verified = await verifyReceiptJws(jws, { resolveKey: (await createStaticJwks(JSON.stringify({ keys: [jwk] }))).resolve });
    const seen: unknown[] = [];
    const hooks: ReceiptHooks = {
      verifyRouterAttestation: async (b, _at, raw) => {
        seen.push(b, raw);
        return { result: 'pass' };
      },
    };
    expect((await evaluateReceipt(verified, expectations, hooks)).verdict).toBe('verified');
    expect(seen).toEqual([JSON.parse(block), block]);
    expect(seen[1]).not.toBe(JSON.stringify(JSON.parse(block)));
  });

  test('receipt_signature is context: skip with its reason, never pass', async () => {
    const v = await verdictOf({ receipt_signature: { kid: 'router-receipt-1', alg: 'ES256', jwks_url: 'https://x/.well-known/jwks.json' } });
    expect(check(v, 'receipt_signature')).toMatchObject({ result: 'skip', detail: expect.stringMatching(/^recorded, not checked/) });
    expect(v.verdict).toBe('verified');
  });

  test('the receipt key check is recorded as the resolver found it; without a bundle it says so', async () => {
    expect(check(await verdictOf({}, {}, { ...expectations, receiptKey: { result: 'pass', detail: 'among the receipt signing keys of trust bundle v3' } }), 'receipt_key')).toMatchObject({ result: 'pass' });
    expect(check(await verdictOf({}), 'receipt_key')).toMatchObject({ result: 'skip', detail: expect.stringMatching(/no trust bundle consulted/) });
  });

  test('values the app never saw are skipped with a reason', async () => {
    const v = await verdictOf({}, {}, { receiptId: ID });
    expect(check(v, 'routed_model')).toEqual({ name: 'routed_model', result: 'skip', detail: 'nothing to compare: the app received no such value' });
    expect(check(v, 'iat')).toMatchObject({ result: 'skip' });
  });
});

describe('inference_attestation against the operator policy', () => {
  const hooks = (policy: Parameters<typeof createInferenceCheck>[0]) => ({ verifyInferenceAttestation: createInferenceCheck(policy, { amdArks: [pki.ark] }) });
  const allowSnp = { snp: { allowedMeasurements: [MEASUREMENT.toString('hex')] } };

  test('without a policy: skip: no policy (shown, informational), even for a genuine document', async () => {
    const v = await verdictOf({ inference_attestation: snpBlock() }, hooks(undefined));
    expect(check(v, 'inference_attestation')).toEqual({ name: 'inference_attestation', result: 'skip', detail: 'no policy (snp evidence not checked)' });
    expect(v.verdict).toBe('verified');
    expect(check(await verdictOf({ inference_attestation: { kind: 'tdx' } }, hooks({})), 'inference_attestation')).toMatchObject({ result: 'skip', detail: 'no policy (tdx evidence not checked)' });
  });

  test('with a policy: an allowed measurement passes', async () => {
    const v = await verdictOf({ inference_attestation: snpBlock() }, hooks(allowSnp));
    expect(check(v, 'inference_attestation')).toMatchObject({ result: 'pass', detail: expect.stringContaining(MEASUREMENT.toString('hex')) });
    expect(v.verdict).toBe('verified');
  });

  test('with a policy: it is required', async () => {
    const other = await verdictOf({ inference_attestation: snpBlock(createHash('sha384').update('other').digest()) }, hooks(allowSnp));
    expect(other).toMatchObject({ verdict: 'failed', code: 'ERR_POLICY_MEASUREMENT' });
    const nitro = await verdictOf({ inference_attestation: { kind: 'nitro', document_b64: 'AAAA' } }, hooks(allowSnp));
    expect(nitro).toMatchObject({ verdict: 'failed', code: 'ERR_RECEIPT_INFERENCE_NOT_ALLOWED' });
    expect(await verdictOf({}, hooks(allowSnp))).toMatchObject({ verdict: 'unverifiable', code: 'ERR_RECEIPT_INFERENCE_ABSENT' });
    const tdx = await verdictOf({ inference_attestation: { kind: 'tdx' } }, hooks(allowSnp));
    expect(tdx).toMatchObject({ verdict: 'unverifiable', code: 'ERR_RECEIPT_INFERENCE_KIND_UNKNOWN' });
    expect(check(tdx, 'inference_attestation')?.detail).toBe('unverifiable: tdx');
  });

  test('with a policy: evidence that does not chain to the roots fails', async () => {
    const v = await verdictOf({ inference_attestation: snpBlock() }, { verifyInferenceAttestation: createInferenceCheck(allowSnp) });
    expect(v.verdict).toBe('failed');
    expect(check(v, 'inference_attestation')?.result).toBe('fail');
  });
});

describe('the receipt-key allowlist never fails open', () => {
  const identity = (keys?: AttestedIdentity['receiptSigningKeys']): AttestedIdentity => ({
    spkiSha256: 'ab'.repeat(32),
    kind: 'snp',
    bundleVersion: 17,
    freshness: 'nonce-bound',
    channel: 'bound',
    verifiedAt: new Date().toISOString(),
    expiresAt: new Date().toISOString(),
    ...(keys ? { receiptSigningKeys: keys } : {}),
    summary: {},
  });
  /** A fake clock that advances only when the policy sleeps. */
  function timed(current: (t: number) => AttestedIdentity | undefined, waitMs = 5_000) {
    let t = 0;
    const sleeps: number[] = [];
    const policy = createReceiptKeyPolicy({
      current: () => current(t),
      attestationOff: false,
      clock: () => new Date(t),
      sleep: async (ms) => {
        sleeps.push(ms);
        t += ms;
      },
      waitMs,
    });
    return { policy, sleeps, now: () => t };
  }

  test('no fresh identity: waits the bound, then unverifiable (never "any key"); later receipts do not wait it again', async () => {
    let pinned: AttestedIdentity | undefined;
    const { policy, now } = timed(() => pinned);
    const p = await policy();
    expect(p).toEqual({ check: { result: 'unverifiable', code: 'ERR_RECEIPT_KEY_UNPINNED', detail: expect.stringMatching(/no fresh attested identity within 5 s/) } });
    expect(now()).toBe(5_000);
    expect((await policy()).check.code).toBe('ERR_RECEIPT_KEY_UNPINNED');
    expect(now()).toBe(5_000);
    // Once an identity is pinned again, a later gap gets the whole wait anew.
    pinned = identity();
    expect((await policy()).check.result).toBe('skip');
    pinned = undefined;
    await policy();
    expect(now()).toBe(10_000);
  });

  test('an identity pinned during the wait: its bundle decides', async () => {
    const { policy, now } = timed((t) => (t >= 1_200 ? identity({ kids: ['router-receipt-1'] }) : undefined));
    expect(await policy()).toEqual({ allowed: { kids: ['router-receipt-1'] }, check: { result: 'pass', detail: 'among the receipt signing keys of trust bundle v17' } });
    expect(now()).toBe(1_200);
  });

  test('a bundle that lists no receipt keys: skip with that reason; attestation off: unverifiable at once', async () => {
    expect(await timed(() => identity()).policy()).toMatchObject({ allowed: {}, check: { result: 'skip', detail: expect.stringMatching(/^trust bundle v17 lists no receipt signing keys/) } });
    const off = createReceiptKeyPolicy({ current: () => identity(), attestationOff: true, clock: () => new Date(), sleep: () => Promise.reject(new Error('must not wait')), waitMs: 1_000 });
    expect(await off()).toMatchObject({ check: { result: 'unverifiable', code: 'ERR_RECEIPT_KEY_UNPINNED', detail: expect.stringMatching(/attestation is off/) } });
  });

  test('an identity pinned, or attestation off: the policy is a value (no promise, no turn of the microtask queue); only the wait is a promise', async () => {
    let pinned: AttestedIdentity | undefined = identity({ kids: ['router-receipt-1'] });
    const { policy } = timed(() => pinned);
    expect(policy()).toEqual({ allowed: { kids: ['router-receipt-1'] }, check: { result: 'pass', detail: 'among the receipt signing keys of trust bundle v17' } });
    const off = createReceiptKeyPolicy({ current: () => undefined, attestationOff: true, clock: () => new Date(), sleep: () => Promise.reject(new Error('must not wait')), waitMs: 1_000 });
    expect(off()).not.toBeInstanceOf(Promise);
    pinned = undefined;
    const waiting = policy();
    expect(waiting).toBeInstanceOf(Promise);
    expect((await waiting).check.code).toBe('ERR_RECEIPT_KEY_UNPINNED');
  });
});
