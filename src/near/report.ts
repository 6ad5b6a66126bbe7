import { MalformedError } from '../errors/index.js';
import { describe, fromHex } from '../util/bytes.js';

/**
 * The attestation report of a NEAR AI Cloud gateway or an ACI router's legacy alias
 * (`GET /v1/attestation/report`, aci-pinaivu-receipts.md §1.9–1.10; docs/wire/aci.md §7).
 * Two shapes: NEAR's `{gateway_attestation, model_attestations[]}` and the flat legacy object
 * (one attestation, the router's own). Each attestation names a signing identity and carries a
 * dstack TDX quote, optionally with its event log and `app_compose`.
 */
export interface NearAttestation {
  /** `gateway`: the TLS endpoint we talk to (the flat legacy report is one); `model`: a serving node behind it. */
  role: 'gateway' | 'model';
  modelName?: string;
  signingAlgo: 'ecdsa' | 'ed25519';
  /** As served: `0x` + 40 hex (ecdsa) or 64 hex (ed25519 public key). */
  signingAddress: string;
  /** The identity bytes the quote binds: the 20-byte address or the 32-byte key. */
  identity: Uint8Array;
  quote: Uint8Array;
  /** The dstack event log as served (array or JSON string), parsed by the TDX layer. */
  eventLog?: unknown;
  appCompose?: string;
}

export interface NearReport {
  attestations: NearAttestation[];
}

/** A gateway plus a handful of model nodes; each quote is ~5 KB hex, each event log a few KB. */
export const MAX_NEAR_REPORT_BYTES = 2 * 1024 * 1024;
export const MAX_MODEL_ATTESTATIONS = 64;

function bad(message: string): never {
  throw new MalformedError('ERR_NEAR_REPORT_MALFORMED', message);
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function attestation(o: unknown, where: string, role: NearAttestation['role']): NearAttestation {
  if (!isObject(o)) bad(`expected ${where} to be an object, got ${describe(o)}`);
  const algo = o.signing_algo ?? 'ecdsa';
  if (algo !== 'ecdsa' && algo !== 'ed25519') bad(`expected ${where}.signing_algo "ecdsa" or "ed25519", got ${describe(algo)}`);
  const address = o.signing_address;
  if (typeof address !== 'string') bad(`expected ${where}.signing_address to be a string, got ${describe(address)}`);
  if (algo === 'ecdsa' && !/^0x[0-9a-fA-F]{40}$/.test(address)) bad(`expected ${where}.signing_address to be a 0x-prefixed 20-byte address, got ${describe(address)}`);
  if (algo === 'ed25519' && !/^(0x)?[0-9a-fA-F]{64}$/.test(address)) bad(`expected ${where}.signing_address to be a 32-byte hex Ed25519 key, got ${describe(address)}`);
  if (typeof o.intel_quote !== 'string') bad(`expected ${where}.intel_quote to be a hex TDX quote, got ${describe(o.intel_quote)}`);
  const quote = fromHex(o.intel_quote, { field: `${where}.intel_quote`, code: 'ERR_NEAR_REPORT_MALFORMED', allow0x: true });
  // dstack puts app_compose in info.tcb_info (an object or a JSON string); the legacy report may carry it flat.
  let tcb: unknown = isObject(o.info) ? o.info.tcb_info : undefined;
  if (typeof tcb === 'string') {
    try {
      tcb = JSON.parse(tcb) as unknown;
    } catch {
      bad(`expected ${where}.info.tcb_info to be JSON`);
    }
  }
  const appCompose = isObject(tcb) && typeof tcb.app_compose === 'string' ? tcb.app_compose : typeof o.app_compose === 'string' ? o.app_compose : undefined;
  const modelName = typeof o.model_name === 'string' ? o.model_name : undefined;
  return {
    role,
    ...(modelName !== undefined ? { modelName } : {}),
    signingAlgo: algo,
    signingAddress: address,
    identity: fromHex(address.replace(/^0x/, ''), { field: `${where}.signing_address`, code: 'ERR_NEAR_REPORT_MALFORMED' }),
    quote,
    ...(o.event_log !== undefined && o.event_log !== null ? { eventLog: o.event_log } : {}),
    ...(appCompose !== undefined ? { appCompose } : {}),
  };
}

/** Parse either shape. Pure; throws only MalformedError (`ERR_NEAR_REPORT_MALFORMED`). */
export function parseNearReport(input: Uint8Array | string | unknown): NearReport {
  let value = input;
  if (typeof value === 'string' || value instanceof Uint8Array) {
    const size = typeof value === 'string' ? Buffer.byteLength(value) : value.length;
    if (size > MAX_NEAR_REPORT_BYTES) bad(`expected a report of at most ${MAX_NEAR_REPORT_BYTES} bytes, got ${size}`);
    try {
      value = JSON.parse(typeof value === 'string' ? value : Buffer.from(value).toString('utf8')) as unknown;
    } catch {
      bad('expected the attestation report to be JSON');
    }
  }
  if (!isObject(value)) bad(`expected the attestation report to be an object, got ${describe(value)}`);
  if (value.gateway_attestation === undefined && value.model_attestations === undefined) {
    return { attestations: [attestation(value, 'report', 'gateway')] };
  }
  const models = value.model_attestations ?? [];
  if (!Array.isArray(models)) bad(`expected model_attestations to be an array, got ${describe(models)}`);
  if (models.length > MAX_MODEL_ATTESTATIONS) bad(`expected at most ${MAX_MODEL_ATTESTATIONS} model_attestations, got ${models.length}`);
  return {
    attestations: [
      ...(value.gateway_attestation !== undefined ? [attestation(value.gateway_attestation, 'gateway_attestation', 'gateway')] : []),
      ...models.map((m, i) => attestation(m, `model_attestations[${i}]`, 'model')),
    ],
  };
}
