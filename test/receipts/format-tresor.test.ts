import { createHash } from 'node:crypto';
import { CompactSign, exportJWK, generateKeyPair } from 'jose';
import { expect, test } from 'vitest';
import { tresorFormat } from '../../src/receipts/format-tresor.js';
import { createRemoteJwks } from '../../src/receipts/jwks.js';
import type { ReceiptJob } from '../../src/receipts/journal.js';

const ID = '7c9e6679-7425-40de-944b-e07fc1f90ae7';
const hex = (s: string) => createHash('sha256').update(s).digest('hex');
const DEADLINE_MS = 6_000;

/** A signed receipt for one exchange, the JWKS that verifies it, and the job it belongs to. */
async function exchange(at: Date) {
  const p = await generateKeyPair('ES256', { extractable: true });
  const jwks = JSON.stringify({ keys: [{ ...(await exportJWK(p.publicKey)), kid: 'router-receipt-2', alg: 'ES256' }] });
  const claims = { jti: ID, iat: Math.floor(at.getTime() / 1000), requested_route: 'auto', routed_model: 'm', failover: false, request_digest: `sha256:${hex('req')}`, response_digest: `sha256:${hex('res')}` };
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
