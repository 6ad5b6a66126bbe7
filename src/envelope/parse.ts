import { MalformedError } from '../errors/index.js';
import { fromBase64 } from '../util/bytes.js';

/** Bound on an envelope (docs/wire.md §3). */
export const MAX_ENVELOPE_BYTES = 64 * 1024;
export const ENVELOPE_SCHEMA = 'tresor.attestation/v1';

/** `GET /attestation`, parsed and shape-checked, nothing verified. */
export interface RouterEnvelope {
  readonly workload: string;
  readonly evidence: { kind: 'snp'; report: Uint8Array; vcekChainPem: string } | { kind: 'nitro'; document: Uint8Array };
  readonly tlsSpkiSha256: string;
  readonly workloadIdentityTag: string;
  readonly manifestJws: string;
  readonly trustBundleUrl: string;
  readonly issuedAt: Date;
  readonly maxAgeSeconds: number;
  readonly nonce?: string;
}

const bad = (msg: string) => new MalformedError('ERR_ATTEST_SCHEMA', `attestation envelope: ${msg}`);
const hex = (v: unknown, field: string, len: number) => {
  if (typeof v !== 'string' || !new RegExp(`^[0-9a-f]{${len}}$`).test(v)) throw bad(`${field} must be ${len} lowercase hex digits`);
  return v;
};

export function parseEnvelope(bytes: Uint8Array): RouterEnvelope {
  if (bytes.length > MAX_ENVELOPE_BYTES) throw bad(`larger than ${MAX_ENVELOPE_BYTES} bytes`);
  let e: Record<string, unknown>;
  try {
    e = JSON.parse(Buffer.from(bytes).toString('utf8')) as Record<string, unknown>;
  } catch {
    throw bad('not JSON');
  }
  if (typeof e !== 'object' || e === null || Array.isArray(e)) throw bad('not a JSON object');
  if (e.schema !== ENVELOPE_SCHEMA) throw bad(`expected schema ${ENVELOPE_SCHEMA}, got ${JSON.stringify(e.schema)}`);
  if (typeof e.workload !== 'string') throw bad('workload must be a string');
  const hasSnp = e.snp_report_b64 !== undefined;
  const hasNitro = e.nitro_attestation_b64 !== undefined;
  if (hasSnp === hasNitro) throw bad('exactly one of snp_report_b64 and nitro_attestation_b64 must be present');
  let evidence: RouterEnvelope['evidence'];
  if (hasSnp) {
    if (typeof e.snp_report_b64 !== 'string' || typeof e.vcek_chain_pem !== 'string') throw bad('snp_report_b64 and vcek_chain_pem must be strings');
    evidence = { kind: 'snp', report: fromBase64(e.snp_report_b64, { field: 'snp_report_b64', code: 'ERR_ATTEST_SCHEMA' }), vcekChainPem: e.vcek_chain_pem };
  } else {
    if (typeof e.nitro_attestation_b64 !== 'string') throw bad('nitro_attestation_b64 must be a string');
    evidence = { kind: 'nitro', document: fromBase64(e.nitro_attestation_b64, { field: 'nitro_attestation_b64', code: 'ERR_ATTEST_SCHEMA' }) };
  }
  if (typeof e.workload_identity_manifest_jws !== 'string') throw bad('workload_identity_manifest_jws must be a string');
  if (typeof e.trust_bundle_url !== 'string') throw bad('trust_bundle_url must be a string');
  if (typeof e.issued_at !== 'string' || !/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/.test(e.issued_at)) throw bad('issued_at must be an RFC 3339 UTC time');
  if (typeof e.max_age_seconds !== 'number' || !Number.isInteger(e.max_age_seconds) || e.max_age_seconds < 1 || e.max_age_seconds > 86_400) {
    throw bad('max_age_seconds must be an integer 1..86400');
  }
  return {
    workload: e.workload,
    evidence,
    tlsSpkiSha256: hex(e.tls_spki_sha256, 'tls_spki_sha256', 64),
    workloadIdentityTag: hex(e.workload_identity_tag, 'workload_identity_tag', 64),
    manifestJws: e.workload_identity_manifest_jws,
    trustBundleUrl: e.trust_bundle_url,
    issuedAt: new Date(e.issued_at),
    maxAgeSeconds: e.max_age_seconds,
    ...(e.nonce !== undefined ? { nonce: hex(e.nonce, 'nonce', 64) } : {}),
  };
}
