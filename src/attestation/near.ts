import { randomBytes } from 'node:crypto';
import type { UpstreamConfig } from '../config/types.js';
import { FetchError } from '../errors/index.js';
import { MAX_NEAR_REPORT_BYTES, parseNearReport, verifyNearReport, type AttestedSigner } from '../near/index.js';
import type { Clock } from '../types.js';
import type { UpstreamGet } from '../transport/hooks.js';
import type { AttestedIdentity } from './identity.js';
import { inbandGet } from '../transport/inband.js';
import type { AttestOverSocket } from './manager.js';
import { prepareCollateral, tdxCollateralKind, tdxCollateralSource, tdxPolicy, type TdxCollateralDeps } from './tdx.js';
import { loggedCollateral } from './tdx-collateral-log.js';
import { peerChainBase64, type Certificate } from '../x509/certificate.js';

export interface NearAttester {
  attest: AttestOverSocket;
  /** A chat-signing address (or Ed25519 key) this daemon saw attested, with what attested it. Bounded. */
  signer(address: string): (AttestedSigner & { verifiedAt: string }) | undefined;
  /**
   * A signer the connection's report did not name (NEAR lists a model's nodes only when asked for
   * that model): fetch `/v1/attestation/report?model=&signing_address=` with a fresh nonce over the
   * upstream's attested pool and keep the model attestations that verify. Single flight per
   * address, at most once per 10 s for it.
   */
  lookupSigner(address: string, model: string | undefined, get: UpstreamGet): Promise<void>;
}

/** The policy a `near` pin was verified under, as data (archived in its pin document, re-applied by `tresor-verify audit`). */
export function nearPinPolicy(u: UpstreamConfig): Record<string, unknown> {
  return { allowedMeasurements: [...u.near.allowed_measurements], maxAgeSeconds: u.attestation.max_age_seconds, tdx: tdxPolicy(u), tdxCollateral: tdxCollateralKind(u) };
}

const LOOKUP_COOLDOWN_MS = 10_000;

/** Signing identities kept (a gateway plus its model nodes, across re-attestations). */
const MAX_SIGNERS = 256;

/**
 * The `near` profile's attestation step (docs/wire/aci.md §7): over each new connection, before
 * any API key or application byte, `GET /v1/attestation/report?nonce=<fresh 64 hex>&signing_algo=ecdsa
 * &include_tls_fingerprint=true`. Every dstack TDX quote in it must verify to the Intel root, bind our
 * nonce and pass the TDX policy and MRTD allowlist; the gateway's must bind the connection's TLS key.
 * The signing addresses they attest are kept: per-chat signatures must recover to one of them.
 */
export function createNearAttester(u: UpstreamConfig, deps: TdxCollateralDeps & { roots: readonly Certificate[] }): NearAttester {
  const url = new URL(u.url);
  const base = url.pathname.replace(/\/+$/, '');
  const timeoutMs = u.timeouts.connect_seconds * 1000 + 10_000;
  const collateral = tdxCollateralSource(u, deps);
  const signers = new Map<string, AttestedSigner & { verifiedAt: string }>();
  const keep = (list: readonly AttestedSigner[], at: Date) => {
    for (const s of list) {
      signers.delete(s.signingAddress);
      signers.set(s.signingAddress, { ...s, verifiedAt: at.toISOString() });
      if (signers.size > MAX_SIGNERS) signers.delete(signers.keys().next().value as string);
    }
  };
  const lookups = new Map<string, { at: number; running?: Promise<void> }>();
  return {
    signer: (address) => signers.get(address.toLowerCase().replace(/^0x(?=[0-9a-f]{64}$)/, '')),
    lookupSigner(address, model, get) {
      const key = address.toLowerCase();
      const now = deps.clock().getTime();
      const last = lookups.get(key);
      if (last?.running) return last.running;
      if (last && now - last.at < LOOKUP_COOLDOWN_MS) return Promise.resolve();
      const running = (async () => {
        const nonce = randomBytes(32);
        const query = `nonce=${nonce.toString('hex')}&signing_algo=ecdsa&signing_address=${encodeURIComponent(address)}${model !== undefined ? `&model=${encodeURIComponent(model)}` : ''}`;
        const res = await get(`/v1/attestation/report?${query}`, { headers: { accept: 'application/json' }, timeoutMs, maxBytes: MAX_NEAR_REPORT_BYTES });
        if (res.status !== 200) throw new FetchError('ERR_ATTEST_FETCH', `GET /v1/attestation/report answered HTTP ${res.status}`);
        const at = deps.clock();
        // Only model nodes: a gateway entry's TLS binding was checked when its connection was attested.
        const models = parseNearReport(res.body).attestations.filter((a) => a.role === 'model');
        await prepareCollateral(collateral, models.map((a) => a.quote));
        const { signers: found } = verifyNearReport({ attestations: models }, { nonce, at, roots: deps.roots, policy: tdxPolicy(u), allowedMrtd: u.near.allowed_measurements, collateral });
        keep(found, at);
      })().finally(() => lookups.set(key, { at: now }));
      lookups.set(key, { at: now, running });
      if (lookups.size > MAX_SIGNERS) lookups.delete(lookups.keys().next().value as string);
      return running;
    },
    async attest({ socket, spkiSha256 }) {
      const at = deps.clock();
      const tlsChain = peerChainBase64(socket);
      const nonce = randomBytes(32);
      const path = `${base}/v1/attestation/report?nonce=${nonce.toString('hex')}&signing_algo=ecdsa&include_tls_fingerprint=true`;
      const res = await inbandGet(socket, { host: url.host, path, maxBodyBytes: MAX_NEAR_REPORT_BYTES, timeoutMs });
      if (res.status !== 200) throw new FetchError('ERR_ATTEST_FETCH', `GET /v1/attestation/report answered HTTP ${res.status}`);
      const parsedReport = parseNearReport(res.body);
      await prepareCollateral(collateral, parsedReport.attestations.map((a) => a.quote));
      const collateralUsed = new Map<string, Uint8Array | string>();
      const report = verifyNearReport(parsedReport, {
        nonce,
        liveSpkiSha256: spkiSha256,
        at,
        roots: deps.roots,
        policy: tdxPolicy(u),
        allowedMrtd: u.near.allowed_measurements,
        collateral: loggedCollateral(collateral, collateralUsed),
      });
      keep(report.signers, at);
      const gateway = report.signers.find((s) => s.tlsBound) as AttestedSigner;
      const identity: AttestedIdentity = {
        spkiSha256,
        kind: 'tdx',
        measurement: gateway.mrtd,
        tag: gateway.signingAddress,
        verifiedAt: at.toISOString(),
        expiresAt: new Date(at.getTime() + u.attestation.max_age_seconds * 1000).toISOString(),
        // verifyNearReport requires our nonce in every quote and the gateway's binding of this TLS key.
        freshness: 'nonce-bound',
        channel: 'bound',
        summary: {
          profile: 'near',
          tls_key_bound: true,
          tcb_status: gateway.tcbStatus,
          signers: report.signers.map((s) => ({ role: s.role, ...(s.modelName ? { model: s.modelName } : {}), signing_address: s.signingAddress, mrtd: s.mrtd, ...(s.composeHash ? { compose_hash: s.composeHash } : {}) })),
        },
        // The report as received, and the Intel collateral its quotes were judged with.
        evidence: { profile: 'near', blobs: { report: res.body, ...Object.fromEntries(collateralUsed) }, nonce: nonce.toString('hex'), tlsChain, policy: nearPinPolicy(u) },
      };
      return identity;
    },
  };
}
