import { createHash, type KeyObject } from 'node:crypto';
import { CompactSign, exportJWK, generateKeyPair } from 'jose';
import { describe, expect, test } from 'vitest';
import { tresorFormat } from '../../src/receipts/format-tresor.js';
import { createRemoteJwks, createStaticJwks } from '../../src/receipts/jwks.js';
import type { ReceiptKeyPolicy } from '../../src/receipts/key-policy.js';
import type { Check } from '../../src/receipts/verdict.js';
import type { ReceiptJob } from '../../src/receipts/journal.js';

const ID = '7c9e6679-7425-40de-944b-e07fc1f90ae7';
const hex = (s: string) => createHash('sha256').update(s).digest('hex');
const DEADLINE_MS = 6_000;

/** A signed receipt for one exchange, the JWKS that verifies it, and the job it belongs to. */
async function exchange(at: Date, extra: Record<string, unknown> = {}) {
  const p = await generateKeyPair('ES256', { extractable: true });
  const jwks = JSON.stringify({ keys: [{ ...(await exportJWK(p.publicKey)), kid: 'router-receipt-2', alg: 'ES256' }] });
  const claims = { jti: ID, iat: Math.floor(at.getTime() / 1000), requested_route: 'auto', routed_model: 'm', failover: false, request_digest: `sha256:${hex('req')}`, response_digest: `sha256:${hex('res')}`, ...extra };
  const jws = await new CompactSign(Buffer.from(JSON.stringify(claims))).setProtectedHeader({ alg: 'ES256', kid: 'router-receipt-2' }).sign(p.privateKey);
  const job = { started_at: at.toISOString(), tresor: { requested_route: 'auto', routed_model: 'm', failover: false }, request_sha256: hex('req'), response_sha256: hex('res') } as ReceiptJob;
  return { jwks, jws, job };
}

test('an unreachable JWKS is retried until the deadline, the last try at the deadline itself', async () => {
  const t0 = Date.parse('2026-12-01T00:00:00Z');
  let now = t0;
  const clock = () => new Date(now);
  const { jwks, jws, job } = await exchange(clock());
  const fetchedAt: number[] = [];
  // The router's JWKS answers 503 until 1 ms before the retry deadline.
  const remote = createRemoteJwks({
    url: 'https://router.test/.well-known/jwks.json',
    clock,
    cooldownMs: 1_000,
    maxAgeMs: 1_000,
    fetcher: async () => {
      fetchedAt.push(now - t0);
      const up = now - t0 >= DEADLINE_MS - 1;
      return { status: up ? 200 : 503, headers: new Headers(), body: Buffer.from(up ? jwks : 'unavailable') };
    },
  });
  const format = tresorFormat({
    resolveKey: remote.resolve,
    keyPolicy: async () => ({ check: { result: 'skip', detail: 'the bundle lists no receipt keys' } }),
    hooks: {},
    clock,
    sleep: async (ms) => {
      now += ms;
    },
    jwksDeadlineMs: DEADLINE_MS,
  });
  const v = await format.evaluate(jws, job, ID);
  expect(v).toMatchObject({ verdict: 'verified', kid: 'router-receipt-2' });
  expect(fetchedAt.at(-1)).toBe(DEADLINE_MS);
  // Never past the deadline.
  expect(now - t0).toBe(DEADLINE_MS);
});

test('a JWKS that stays unreachable: unverifiable at the deadline, not before, not after', async () => {
  const t0 = Date.parse('2026-12-01T00:00:00Z');
  let now = t0;
  const clock = () => new Date(now);
  const { jws, job } = await exchange(clock());
  const remote = createRemoteJwks({
    url: 'https://router.test/.well-known/jwks.json',
    clock,
    cooldownMs: 1_000,
    fetcher: async () => ({ status: 503, headers: new Headers(), body: Buffer.from('unavailable') }),
  });
  const sleep = async (ms: number) => {
    now += ms;
  };
  const format = tresorFormat({ resolveKey: remote.resolve, keyPolicy: async () => ({ check: { result: 'skip' } }), hooks: {}, clock, sleep, jwksDeadlineMs: DEADLINE_MS });
  expect(await format.evaluate(jws, job, ID)).toMatchObject({ verdict: 'unverifiable', code: 'ERR_JWKS_FETCH' });
  expect(now - t0).toBe(DEADLINE_MS);
});

describe('keys cached and hooks that answer at once: the evaluation is a value, the same as through promises', () => {
  const at = new Date('2026-12-01T00:00:00Z');
  const clock = () => at;
  const sleep = () => Promise.reject(new Error('nothing to wait for'));
  const pass = { result: 'pass', detail: 'among the receipt signing keys of trust bundle v3' } as const;
  /** The same dependencies twice: answering at once, and (the oracle: the shape before) each answer a promise. */
  async function formats(o: { router?: Omit<Check, 'name'>; key?: ReceiptKeyPolicy }) {
    const { jwks, jws, job } = await exchange(at, { router_attestation: { kind: 'snp', envelope: 'e' } });
    const keys = await createStaticJwks(jwks);
    const cached = (await keys.resolve({ kid: 'router-receipt-2' })) as KeyObject[];
    const key: ReceiptKeyPolicy = o.key ?? { allowed: {}, check: pass };
    const router = o.router ?? { result: 'pass', detail: 'snp m, tag t' };
    const deps = (later: boolean) => ({
      resolveKey: (h: Readonly<Record<string, unknown>>) => (h.kid === 'router-receipt-2' ? (later ? Promise.resolve(cached) : cached) : keys.resolve(h)),
      keyPolicy: () => (later ? Promise.resolve(key) : key),
      hooks: {
        verifyRouterAttestation: () => (later ? Promise.resolve(router) : router),
        verifyInferenceAttestation: () => (later ? Promise.resolve({ result: 'skip', detail: 'absent' } as const) : ({ result: 'skip', detail: 'absent' } as const)),
      },
      clock,
      sleep,
      jwksDeadlineMs: 0,
    });
    return { now: tresorFormat(deps(false)), later: tresorFormat(deps(true)), jws, job };
  }

  test.each([
    ['verified', {}, 'verified'],
    ['the router evidence fails', { router: { result: 'fail', code: 'ERR_RECEIPT_ROUTER_KEY_UNKNOWN', detail: 'never verified' } as const }, 'failed'],
    ['the receipt keys unknown', { key: { check: { result: 'unverifiable', code: 'ERR_RECEIPT_KEY_UNPINNED', detail: 'no identity' } } as ReceiptKeyPolicy }, 'unverifiable'],
  ] as const)('%s', async (_name, o, verdict) => {
    const f = await formats(o);
    const now = f.now.evaluate(f.jws, f.job, ID);
    expect(now).not.toBeInstanceOf(Promise);
    const later = f.later.evaluate(f.jws, f.job, ID);
    expect(later).toBeInstanceOf(Promise);
    // Byte for byte what the record gets, member order included.
    expect(JSON.stringify(now)).toBe(JSON.stringify(await later));
    expect(now).toMatchObject({ verdict });
  });

  test('a receipt whose bytes do not match (failed) and one signed by another key: values too, the same as through promises', async () => {
    const f = await formats({});
    const job = { ...f.job, response_sha256: hex('other') };
    const now = f.now.evaluate(f.jws, job, ID);
    expect(now).not.toBeInstanceOf(Promise);
    expect(JSON.stringify(now)).toBe(JSON.stringify(await f.later.evaluate(f.jws, job, ID)));
    expect(now).toMatchObject({ verdict: 'failed', code: 'ERR_RECEIPT_RESPONSE_DIGEST' });
    const other = await exchange(at); // another key, same kid: the signature does not verify
    const bad = f.now.evaluate(other.jws, other.job, ID);
    expect(JSON.stringify(await bad)).toBe(JSON.stringify(await f.later.evaluate(other.jws, other.job, ID)));
    expect(await bad).toMatchObject({ verdict: 'failed', code: 'ERR_RECEIPT_SIGNATURE' });
  });

  test('the parse\'s verbatim proof of the JWS goes with its evaluation (for the archive line), only for the exact text', async () => {
    const f = await formats({});
    for (const format of [f.now, f.later]) {
      expect(await format.evaluate(f.jws, f.job, ID)).toMatchObject({ verdict: 'verified', verbatim: f.jws });
      // Whitespace around it: still the receipt (the parse trims it), but written escaped.
      for (const t of [`${f.jws}\n`, ` ${f.jws}`]) {
        const v = await format.evaluate(t, f.job, ID);
        expect(v.verdict).toBe('verified');
        expect(v.verbatim).toBeUndefined();
      }
    }
    const other = await exchange(at); // signed by another key: failed, no proof (the archive checks it)
    expect((await f.now.evaluate(other.jws, other.job, ID)).verbatim).toBeUndefined();
  });
});

