import { createHash, createHmac } from 'node:crypto';
import { CompactSign, calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK } from 'jose';
import fc from 'fast-check';
import { beforeAll, describe, expect, test } from 'vitest';
import { createRemoteJwks, createStaticJwks } from '../../src/receipts/jwks.js';
import { derToRaw, parseCompactJws } from '../../src/receipts/jws.js';
import { verifyReceiptJws, verifyReceiptJwsNow } from '../../src/receipts/verify.js';
import { parseDigest } from '../../src/receipts/digest.js';
import { evaluateReceipt } from '../../src/receipts/verdict.js';
import { receiptPath, validateReceiptId } from '../../src/receipts/id.js';
import { rawToDer } from '../../src/sim/receipts.js';
import { MalformedError } from '../../src/errors/index.js';
import type { Fetcher } from '../../src/types.js';

type Priv = Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];
let k1: Priv;
let k2: Priv;
let jwk1: JWK;
let jwk2: JWK;
const ID = '7c9e6679-7425-40de-944b-e07fc1f90ae7';
const REQ = Buffer.from('{"model":"eu/tresor/gpt-oss-120b"}');
const RES = Buffer.from('data: {}\n\ndata: [DONE]\n\n');
const sha = (b: Uint8Array) => new Uint8Array(createHash('sha256').update(b).digest());
const hex = (b: Uint8Array) => Buffer.from(sha(b)).toString('hex');
const claims = (extra: Record<string, unknown> = {}) => ({
  jti: ID,
  iat: 1_800_000_000,
  receipt_type: 'message',
  requested_route: 'auto/auto/gpt-oss-120b',
  routed_model: 'eu/tresor/gpt-oss-120b',
  failover: false,
  request_digest: `sha256:${hex(REQ)}`,
  response_digest: `sha256:${hex(RES)}`,
  ...extra,
});
const sign = (payload: object, key: Priv = k1, header: Record<string, unknown> = { alg: 'ES256', kid: 'router-receipt-1' }) =>
  new CompactSign(Buffer.from(JSON.stringify(payload))).setProtectedHeader(header as { alg: string }).sign(key);
const b64 = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

beforeAll(async () => {
  ({ privateKey: k1 } = await generateKeyPair('ES256', { extractable: true }).then(async (p) => {
    jwk1 = { ...(await exportJWK(p.publicKey)), kid: 'router-receipt-1', alg: 'ES256', use: 'sig' };
    return p;
  }));
  ({ privateKey: k2 } = await generateKeyPair('ES256', { extractable: true }).then(async (p) => {
    jwk2 = { ...(await exportJWK(p.publicKey)), kid: 'router-receipt-2', alg: 'ES256', use: 'sig' };
    return p;
  }));
});

const jwks = (keys: JWK[] = [jwk1, jwk2]) => JSON.stringify({ keys });
const expectations = { receiptId: ID, tresor: { requested_route: 'auto/auto/gpt-oss-120b', routed_model: 'eu/tresor/gpt-oss-120b', failover: false }, requestSha256: sha(REQ), responseSha256: sha(RES), exchangeAt: new Date(1_800_000_010_000) };

async function verdictOf(jws: string, keys: JWK[] = [jwk1, jwk2], expect = expectations) {
  const verified = await verifyReceiptJws(jws, { resolveKey: (await createStaticJwks(jwks(keys))).resolve });
  return evaluateReceipt(verified, expect);
}

describe('receipt JWS verification', () => {
  test('a genuine receipt verifies with every check passing', async () => {
    const v = await verdictOf(await sign(claims()));
    expect(v.verdict).toBe('verified');
    expect(v).toMatchObject({ receipt_type: 'message', kid: 'router-receipt-1', signature_encoding: 'raw' });
    expect(v.checks.filter((c) => c.result === 'fail')).toEqual([]);
  });

  test.each([
    ['alg none', async () => `${b64({ alg: 'none', kid: 'router-receipt-1' })}.${b64(claims())}.`, 'ERR_RECEIPT_ALG_NOT_ALLOWED'],
    [
      'HS256 keyed with the public key',
      async () => {
        const input = `${b64({ alg: 'HS256', kid: 'router-receipt-1' })}.${b64(claims())}`;
        return `${input}.${createHmac('sha256', JSON.stringify(jwk1)).update(input).digest('base64url')}`;
      },
      'ERR_RECEIPT_ALG_NOT_ALLOWED',
    ],
    ['ES384', async () => sign(claims(), (await generateKeyPair('ES384')).privateKey, { alg: 'ES384', kid: 'router-receipt-1' }), 'ERR_RECEIPT_ALG_NOT_ALLOWED'],
    ['wrong key', async () => sign(claims(), (await generateKeyPair('ES256')).privateKey), 'ERR_RECEIPT_SIGNATURE'],
    ['kid pointing at another key', async () => sign(claims(), k1, { alg: 'ES256', kid: 'router-receipt-2' }), 'ERR_RECEIPT_SIGNATURE'],
    ['unknown kid', async () => sign(claims(), k1, { alg: 'ES256', kid: 'router-receipt-9' }), 'ERR_JWKS_NO_MATCHING_KEY'],
    [
      'payload tampered',
      async () => {
        const [h, , s] = (await sign(claims())).split('.');
        return `${h}.${b64(claims({ routed_model: 'eu/tresor/cheaper-model' }))}.${s}`;
      },
      'ERR_RECEIPT_SIGNATURE',
    ],
    [
      'signature tampered',
      async () => {
        const [h, p, s] = (await sign(claims())).split('.') as [string, string, string];
        const sig = Buffer.from(s, 'base64url');
        sig[10] = (sig[10] as number) ^ 1;
        return `${h}.${p}.${sig.toString('base64url')}`;
      },
      'ERR_RECEIPT_SIGNATURE',
    ],
    [
      'critical header',
      async () => `${b64({ alg: 'ES256', kid: 'router-receipt-1', crit: ['exp'], exp: 1 })}.${b64(claims())}.${(await sign(claims())).split('.')[2]}`,
      'ERR_RECEIPT_CRIT_UNSUPPORTED',
    ],
  ])('refuses %s', async (_name, make, code) => {
    await expect(verdictOf(await make())).rejects.toMatchObject({ code });
  });

  test('a key removed from the JWKS no longer verifies', async () => {
    await expect(verdictOf(await sign(claims()), [jwk2])).rejects.toMatchObject({ code: 'ERR_JWKS_NO_MATCHING_KEY' });
  });

  test('a JWKS key not listed in the trust bundle is refused', async () => {
    const allowed = { thumbprints: [await calculateJwkThumbprint(jwk2)] };
    const { resolve } = await createStaticJwks(jwks(), allowed);
    await expect(verifyReceiptJws(await sign(claims()), { resolveKey: resolve })).rejects.toMatchObject({ code: 'ERR_RECEIPT_KEY_NOT_IN_BUNDLE' });
    const ok = await verifyReceiptJws(await sign(claims(), k2, { alg: 'ES256', kid: 'router-receipt-2' }), { resolveKey: resolve });
    expect(ok.kid).toBe('router-receipt-2');
  });

  test('a P-384 key under ES256 is refused', async () => {
    const p384 = await generateKeyPair('ES384', { extractable: true });
    const { resolve } = await createStaticJwks(JSON.stringify({ keys: [{ ...(await exportJWK(p384.publicKey)), kid: 'router-receipt-1' }] }));
    await expect(verifyReceiptJws(await sign(claims()), { resolveKey: resolve })).rejects.toMatchObject({ code: 'ERR_JWKS_NO_MATCHING_KEY' });
  });

  test('a DER-encoded signature (the docs sample form) is accepted and recorded as non-standard', async () => {
    const [h, p, s] = (await sign(claims())).split('.') as [string, string, string];
    const der = `${h}.${p}.${rawToDer(Buffer.from(s, 'base64url')).toString('base64url')}`;
    const v = await verdictOf(der);
    expect(v.verdict).toBe('verified');
    expect(v.signature_encoding).toBe('der');
  });

  test.each([
    ['jti mismatch', claims({ jti: 'another-id' }), 'ERR_RECEIPT_JTI_MISMATCH'],
    ['route swap', claims({ requested_route: 'eu/privatemode/kimi-k2.6' }), 'ERR_RECEIPT_ROUTE_MISMATCH'],
    ['model swap', claims({ routed_model: 'global/chutes/kimi-k2.6' }), 'ERR_RECEIPT_MODEL_MISMATCH'],
    ['failover flag inconsistent', claims({ failover: true }), 'ERR_RECEIPT_FAILOVER_MISMATCH'],
    ['request digest mismatch', claims({ request_digest: `sha256:${hex(Buffer.from('other'))}` }), 'ERR_RECEIPT_REQUEST_DIGEST'],
    ['response digest mismatch', claims({ response_digest: `sha256:${hex(Buffer.from('other'))}` }), 'ERR_RECEIPT_RESPONSE_DIGEST'],
    ['missing response digest', claims({ response_digest: undefined }), 'ERR_RECEIPT_RESPONSE_DIGEST'],
    ['implausible iat', claims({ iat: 1_700_000_000 }), 'ERR_RECEIPT_IAT'],
  ])('a validly signed receipt with %s fails with its own code', async (_name, payload, code) => {
    const v = await verdictOf(await sign(payload));
    expect(v.verdict).toBe('failed');
    expect(v.code).toBe(code);
  });

  test('digests in other accepted forms pass; an unknown form is unverifiable, never a pass', async () => {
    const bare = await verdictOf(await sign(claims({ request_digest: hex(REQ), response_digest: Buffer.from(sha(RES)).toString('base64url') })));
    expect(bare.verdict).toBe('verified');
    const odd = await verdictOf(await sign(claims({ response_digest: `sha512:${'0'.repeat(128)}` })));
    expect(odd.verdict).toBe('unverifiable');
    expect(odd.checks.find((c) => c.name === 'response_digest')).toMatchObject({ result: 'unverifiable', code: 'ERR_RECEIPT_DIGEST_FORM' });
  });

  test('embedded attestation blocks without a verifier are never passes: router evidence unverifiable, inference evidence skip: no policy', async () => {
    const v = await verdictOf(await sign(claims({ router_attestation: { schema: 'tresor.attestation/v1' }, inference_attestation: { kind: 'tdx' } })));
    expect(v.checks.find((c) => c.name === 'router_attestation')?.result).toBe('unverifiable');
    expect(v.checks.find((c) => c.name === 'inference_attestation')).toMatchObject({ result: 'skip', detail: 'no policy (tdx evidence not checked)' });
    expect(v.verdict).toBe('unverifiable');
  });
});

describe('JWKS cache', () => {
  function servedJwks(initial: JWK[], opts: { delayMs?: number; status?: number; size?: number } = {}) {
    const state = { keys: initial, calls: 0 };
    const fetcher: Fetcher = async () => {
      state.calls++;
      if (opts.delayMs) await new Promise((r) => setTimeout(r, opts.delayMs));
      const body = opts.size ? Buffer.alloc(opts.size, 0x20) : Buffer.from(JSON.stringify({ keys: state.keys }));
      return { status: opts.status ?? 200, headers: { get: () => null }, body: new Uint8Array(body) };
    };
    return { state, fetcher };
  }

  test('unknown kid: exactly one refetch, then the rotated key verifies; cooldown bounds refetches', async () => {
    let now = 0;
    const { state, fetcher } = servedJwks([jwk1]);
    const cache = createRemoteJwks({ url: 'https://r.example/.well-known/jwks.json', fetcher, clock: () => new Date(now), cooldownMs: 30_000 });
    await verifyReceiptJws(await sign(claims()), { resolveKey: cache.resolve });
    expect(state.calls).toBe(1);
    state.keys = [jwk1, jwk2];
    now = 31_000;
    await verifyReceiptJws(await sign(claims(), k2, { alg: 'ES256', kid: 'router-receipt-2' }), { resolveKey: cache.resolve });
    expect(state.calls).toBe(2);
    const unknown = await sign(claims(), k2, { alg: 'ES256', kid: 'router-receipt-7' });
    await expect(verifyReceiptJws(unknown, { resolveKey: cache.resolve })).rejects.toMatchObject({ code: 'ERR_JWKS_NO_MATCHING_KEY' });
    await expect(verifyReceiptJws(unknown, { resolveKey: cache.resolve })).rejects.toMatchObject({ code: 'ERR_JWKS_NO_MATCHING_KEY' });
    expect(state.calls).toBe(2);
  });

  test('max age forces a refetch; a key removed upstream stops verifying', async () => {
    let now = 0;
    const { state, fetcher } = servedJwks([jwk1, jwk2]);
    const cache = createRemoteJwks({ url: 'https://r.example/j', fetcher, clock: () => new Date(now), maxAgeMs: 60_000 });
    const jws = await sign(claims());
    await verifyReceiptJws(jws, { resolveKey: cache.resolve });
    state.keys = [jwk2];
    now = 61_000;
    await expect(verifyReceiptJws(jws, { resolveKey: cache.resolve })).rejects.toMatchObject({ code: 'ERR_JWKS_NO_MATCHING_KEY' });
  });

  test('fresh cached keys: the keys and the verified receipt are values, not promises; the trust bundle still decides, an unknown kid or stale keys wait for a fetch', async () => {
    let now = 0;
    const { state, fetcher } = servedJwks([jwk1, jwk2]);
    const cache = createRemoteJwks({ url: 'https://r.example/j', fetcher, clock: () => new Date(now), maxAgeMs: 60_000, cooldownMs: 0 });
    const jws = await sign(claims());
    const first = cache.resolve({ kid: 'router-receipt-1' });
    expect(first).toBeInstanceOf(Promise);
    await first;
    expect(cache.resolve({ kid: 'router-receipt-1' })).toHaveLength(1);
    const now1 = verifyReceiptJwsNow(jws, { resolveKey: cache.resolve });
    expect(now1).not.toBeInstanceOf(Promise);
    expect(now1).toEqual(await verifyReceiptJws(jws, { resolveKey: cache.resolve }));
    const allowed = { thumbprints: [await calculateJwkThumbprint(jwk2)] };
    expect(() => cache.resolve({ kid: 'router-receipt-1' }, allowed)).toThrow(expect.objectContaining({ code: 'ERR_RECEIPT_KEY_NOT_IN_BUNDLE' }));
    await expect(verifyReceiptJws(jws, { resolveKey: (h) => cache.resolve(h, allowed) })).rejects.toMatchObject({ code: 'ERR_RECEIPT_KEY_NOT_IN_BUNDLE' });
    const unknown = cache.resolve({ kid: 'router-receipt-7' });
    expect(unknown).toBeInstanceOf(Promise);
    await expect(unknown).rejects.toMatchObject({ code: 'ERR_JWKS_NO_MATCHING_KEY' });
    now = 61_000;
    const stale = cache.resolve({ kid: 'router-receipt-1' });
    expect(stale).toBeInstanceOf(Promise);
    await stale;
    expect(state.calls).toBe(3);
  });

  test('concurrent resolves share one fetch; failures are typed fetch errors', async () => {
    const { state, fetcher } = servedJwks([jwk1], { delayMs: 30 });
    const cache = createRemoteJwks({ url: 'https://r.example/j', fetcher, clock: () => new Date(0) });
    const jws = await sign(claims());
    await Promise.all([1, 2, 3, 4].map(() => verifyReceiptJws(jws, { resolveKey: cache.resolve })));
    expect(state.calls).toBe(1);
    const big = createRemoteJwks({ url: 'https://r.example/j', fetcher: servedJwks([], { size: 70_000 }).fetcher, clock: () => new Date(0) });
    await expect(big.resolve({ kid: 'x' })).rejects.toMatchObject({ code: 'ERR_JWKS_TOO_LARGE', phase: 'fetch' });
    const down = createRemoteJwks({ url: 'https://r.example/j', fetcher: servedJwks([], { status: 503 }).fetcher, clock: () => new Date(0) });
    await expect(down.resolve({ kid: 'x' })).rejects.toMatchObject({ code: 'ERR_JWKS_FETCH', phase: 'fetch' });
    const unreachable = createRemoteJwks({ url: 'https://r.example/j', fetcher: async () => Promise.reject(Object.assign(new Error('t'), { name: 'TimeoutError' })), clock: () => new Date(0) });
    await expect(unreachable.resolve({ kid: 'x' })).rejects.toMatchObject({ code: 'ERR_JWKS_TIMEOUT' });
  });
});

describe('parsers never crash', () => {
  test('random text to parseCompactJws throws only MalformedError', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 300 }), (s) => {
        try {
          parseCompactJws(s);
        } catch (e) {
          expect(e).toBeInstanceOf(MalformedError);
        }
      }),
      { numRuns: 2000 },
    );
  });

  test('derToRaw round-trips rawToDer and rejects mutated DER', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 64, maxLength: 64 }), fc.nat(80), fc.integer({ min: 1, max: 255 }), (raw, pos, x) => {
        const der = rawToDer(raw);
        expect(Buffer.from(derToRaw(der) as Uint8Array)).toEqual(Buffer.from(raw));
        const bad = Buffer.from(der);
        if (pos < bad.length && (pos < 6 || pos === 2 + 2 + (bad[3] as number) || pos === 2 + 2 + (bad[3] as number) + 1)) {
          bad[pos] = (bad[pos] as number) ^ x;
          const r = derToRaw(bad);
          if (r) expect(Buffer.from(r)).not.toEqual(Buffer.from(raw));
        }
      }),
      { numRuns: 500 },
    );
  });

  test('digest forms and receipt ids', () => {
    expect(parseDigest(`sha256:${'ab'.repeat(32)}`)).toMatchObject({ ok: true, form: 'prefixed' });
    expect(parseDigest(`sha256:${'AB'.repeat(32)}`)).toMatchObject({ ok: false });
    expect(parseDigest(42)).toMatchObject({ ok: false });
    expect(receiptPath(ID)).toBe(`/v1/receipts/${ID}`);
    for (const bad of ['', '../../etc/passwd', 'a/b', 'x'.repeat(129), 'id with space', '%2e%2e']) {
      expect(() => validateReceiptId(bad)).toThrowError(expect.objectContaining({ code: 'ERR_RECEIPT_ID_INVALID' }));
    }
  });
});
