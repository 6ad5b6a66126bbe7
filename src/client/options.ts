import { resolveConfig } from '../config/load.js';
import type { ResolvedConfig } from '../config/types.js';
import type { VerdictSummary } from '../receipts/verdicts.js';
import type { Clock } from '../types.js';
import type { Logger } from '../log/logger.js';

/** Options of `attestedFetch` and `AttestedAgent`: the daemon's per-upstream settings for one router. */
export interface AttestedOptions {
  /** The router's OpenAI base URL, as given to the SDK (`https://api.tresor.co/v1`); its origin is the only one this transport talks to. */
  baseURL: string;
  /** The router's protocol (default `tresor`). */
  profile?: 'tresor' | 'aci' | 'near' | 'pinaivu';
  /** `tresor`: the pinned Ed25519 release-root key file (PEM, JWK or hex). */
  releaseRootFile?: string;
  /** `tresor`: where the trust bundle may come from (https URL or file; default the public Tresor bundle). */
  trustBundle?: string;
  /** Extra CA certificates (PEM file) trusted for the router's TLS certificate, on top of the system store. */
  caFile?: string;
  /** `aci`, `near`: allowed TEE measurements (96 hex); `pinaivu`: allowed coordinator PCR0 values. */
  allowedMeasurements?: readonly string[];
  /**
   * A PEM file of TEST hardware roots (e.g. the simulator's `test-roots.pem`) trusted besides the
   * pinned AMD, AWS Nitro and Intel roots: the daemon's `attestation.test_roots_file` (a trust
   * bundle's roots must otherwise be byte-identical to a pinned one). Never set in production;
   * there is no default.
   */
  testRoots?: string;
  /**
   * `pinaivu` only: accept a channel the evidence does not bind (the coordinator's document binds
   * its signing key, not the TLS key). Required to use that profile; pins then say `channel: unbound`.
   */
  allowUnboundChannel?: boolean;
  /** Receipts (opt-in, default `off`): `audit` records each completion's verdict, `strict` also fails the response body when it does not verify. */
  receipts?: 'audit' | 'strict' | 'off';
  /** Journal, audit log and trust-bundle rollback state go here (as the daemon's `state_dir`); without it receipts are kept in memory. */
  stateDir?: string;
  /** Told each receipt verdict once it is recorded. Exceptions it throws are ignored. */
  onVerdict?: (verdict: VerdictSummary) => void;
  /** Any other key of a `upstreams[]` entry of config.example.yaml (snake_case), merged over what the options above set. */
  upstream?: Record<string, unknown>;
  /** A pino logger for attestation and receipt events (default: silent). */
  logger?: Logger;
  /** Clock for attestation and receipt checks (default: the system clock). */
  clock?: Clock;
  /** Environment for HTTPS_PROXY / NO_PROXY (default: process.env). */
  env?: Record<string, string | undefined>;
}

/** The upstream name the library's single upstream has in logs, verdicts and the audit log. */
export const LIBRARY_UPSTREAM = 'router';

/**
 * Options → the daemon's resolved configuration with one upstream, validated by the same
 * schema (so defaults, bounds and the error messages are the daemon's). The SDK's `/v1` is
 * not part of the upstream URL: attestation and receipt paths are relative to the router root.
 */
export function toConfig(o: AttestedOptions, stateDir: string): ResolvedConfig {
  const url = o.baseURL.replace(/\/+$/, '').replace(/\/v1$/, '');
  const measurements = o.allowedMeasurements ? [...o.allowedMeasurements] : undefined;
  const upstream: Record<string, unknown> = {
    name: LIBRARY_UPSTREAM,
    url,
    profile: o.profile ?? 'tresor',
    ...(o.caFile ? { ca_file: o.caFile } : {}),
    attestation: {
      mode: 'enforce',
      ...(o.releaseRootFile ? { release_root_file: o.releaseRootFile } : {}),
      ...(o.trustBundle ? { trust_bundle: o.trustBundle } : {}),
      ...(o.testRoots ? { test_roots_file: o.testRoots } : {}),
      ...(o.allowUnboundChannel ? { allow_unbound_channel: true } : {}),
    },
    aci: measurements ? { allowed_measurements: measurements } : {},
    near: measurements ? { allowed_measurements: measurements } : {},
    pinaivu: measurements ? { allowed_pcr0: measurements } : {},
    receipts: { mode: o.receipts ?? 'off' },
  };
  return resolveConfig({ log: { level: 'silent' }, state_dir: stateDir, upstreams: [mergeDeep(upstream, o.upstream ?? {})] }, null);
}

function mergeDeep(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    out[k] = isPlain(b) && isPlain(v) ? mergeDeep(b, v) : v;
  }
  return out;
}

const isPlain = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
