// Verification throughput on one core, in a fresh process (so the first call is really cold):
//   node bench/micro.mjs receipts|snp|nitro MS  → one JSON line {kind, coldMs, perSec, ops}.
// receipts: verifyReceiptJws + evaluateReceipt with a static JWKS (parsing, ES256, every claim, digests).
// snp: the router envelope as the daemon checks it on a new TLS key (VCEK chain, report signature,
//      policy, bundle allowlists, manifest JWS, key binding), against an already verified bundle.
// nitro: real AWS Nitro documents (test/vectors) at their own time: COSE, chain to the AWS root, policy.
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';

const ROOT = new URL('../', import.meta.url);
const [kind, msArg = '2000'] = process.argv.slice(2);
const now = () => Number(process.hrtime.bigint()) / 1e6;

async function receipts() {
  const { ReceiptService } = await import('../dist/sim/receipts.js');
  const { defaultFaults } = await import('../dist/sim/faults.js');
  const { createStaticJwks } = await import('../dist/receipts/jwks.js');
  const { verifyReceiptJws } = await import('../dist/receipts/verify.js');
  const { evaluateReceipt } = await import('../dist/receipts/verdict.js');
  const service = await ReceiptService.create();
  const id = service.newId();
  const request = Buffer.from(JSON.stringify({ model: 'eu/tresor/gpt-oss-120b', messages: [{ role: 'user', content: 'hello' }] }));
  const response = randomBytes(1024);
  const sha = (b) => createHash('sha256').update(b).digest();
  const tresor = { requested_route: 'eu/tresor/gpt-oss-120b', routed_model: 'eu/tresor/gpt-oss-120b', failover: false };
  await service.issue(
    id,
    {
      jti: id,
      iat: Math.floor(Date.now() / 1000),
      receipt_type: 'message',
      ...tresor,
      request_digest: `sha256:${sha(request).toString('hex')}`,
      response_digest: `sha256:${sha(response).toString('hex')}`,
      receipt_signature: { kid: service.activeKid, alg: 'ES256', jwks_url: 'https://localhost/.well-known/jwks.json' },
    },
    'owner',
    defaultFaults(),
  );
  const jws = service.peek(id);
  const { resolve } = await createStaticJwks(JSON.stringify(service.jwks(defaultFaults())));
  const expect = { receiptId: id, tresor, requestSha256: sha(request), responseSha256: sha(response) };
  return async () => {
    const verified = await verifyReceiptJws(jws, { resolveKey: resolve });
    const verdict = await evaluateReceipt(verified, { ...expect, exchangeAt: new Date() });
    if (verdict.verdict !== 'verified') throw new Error(`receipt verdict ${verdict.verdict} ${verdict.code}`);
  };
}

async function snp() {
  const { createRouterEvidence } = await import('../dist/sim/mint/router.js');
  const { loadReleaseRootKey } = await import('../dist/trust/release-root.js');
  const { verifyTrustBundle } = await import('../dist/trust/verify-bundle.js');
  const { parseEnvelope } = await import('../dist/envelope/parse.js');
  const { verifyRouterEnvelope } = await import('../dist/envelope/verify.js');
  const { loadNitroRoots } = await import('../dist/evidence/nitro/index.js');
  const evidence = await createRouterEvidence();
  const spki = randomBytes(32).toString('hex');
  const nonce = randomBytes(32).toString('hex');
  const bytes = Buffer.from(JSON.stringify(await evidence.envelope({ spkiSha256: spki, nonce })));
  const bundle = verifyTrustBundle(evidence.bundle(), { rootKey: loadReleaseRootKey(Buffer.from(evidence.releaseRoot.publicPem)), at: new Date() });
  const nitroRoots = loadNitroRoots();
  // The simulator's ARK is a test root: allowed explicitly, as attestation.test_roots_file does in the daemon.
  const testRoots = [evidence.pki.ark];
  return async () => {
    const a = verifyRouterEnvelope(parseEnvelope(bytes), { liveSpkiSha256: spki, bundle, nonce, at: new Date(), nitroRoots, testRoots });
    if (a.kind !== 'snp') throw new Error('not snp');
  };
}

async function nitro() {
  const { loadNitroRoots, parseNitroDocument, verifyNitroAttestation } = await import('../dist/evidence/nitro/index.js');
  const roots = loadNitroRoots();
  const docs = ['nitro-anjuna-prod-2021-03-17.cbor', 'nitro-evervault-beta-prod-2022-10-13.cbor'].map((n) => {
    const bytes = new Uint8Array(readFileSync(new URL(`test/vectors/${n}`, ROOT)));
    return { bytes, at: new Date(parseNitroDocument(bytes).timestamp) };
  });
  let i = 0;
  return async () => {
    const d = docs[i++ % docs.length];
    verifyNitroAttestation(d.bytes, { at: d.at, roots, policy: { maxAgeSeconds: null } });
  };
}

const op = await { receipts, snp, nitro }[kind]();
const t0 = now();
await op();
const coldMs = now() - t0;
const budget = Number(msArg);
let ops = 0;
const start = now();
while (now() - start < budget) {
  for (let k = 0; k < 20; k++) await op();
  ops += 20;
}
const perSec = ops / ((now() - start) / 1000);
process.stdout.write(`${JSON.stringify({ kind, coldMs, perSec, ops })}\n`);
