import type { TcbStatus } from '../evidence/tdx/collateral.js';
import type { OtlpConfig } from '../otlp/settings.js';

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';

/** `pool.http2`: which requests may ride HTTP/2 to the router (see `UpstreamConfig.pool`). */
export type Http2Use = boolean | 'streams';

export interface UpstreamConfig {
  readonly name: string;
  /** The router's protocol: `tresor` (envelope, JWS receipts) or `aci` (aci/1 keyset, signed event-log receipts). */
  readonly profile: 'tresor' | 'aci' | 'pinaivu' | 'near';
  /** Base URL (origin plus an optional path prefix), https, or http only to loopback. */
  readonly url: string;
  readonly listen: { readonly host: string; readonly port: number };
  readonly ca_file: string | null;
  readonly api_key_env: string | null;
  readonly api_key_file: string | null;
  /** A file holding the token apps must present to this listener (X-Tresor-Local-Token or Authorization: Bearer). */
  readonly local_token_file: string | null;
  /** Listen on a non-loopback address without a local token (explicit opt-out). */
  readonly allow_unauthenticated_listen: boolean;
  /** Host names this listener answers to besides localhost, loopback addresses and its own address (e.g. a sidecar's service name); no port. */
  readonly allowed_hosts: readonly string[];
  /** Browser origins (`scheme://host[:port]`, lower-case) that may call this listener, with CORS; any other Origin gets 403. */
  readonly allowed_origins: readonly string[];
  readonly max_body_bytes: number;
  readonly timeouts: {
    readonly connect_seconds: number;
    readonly request_seconds: number;
    readonly max_request_seconds: number;
    readonly stream_idle_seconds: number;
    /** Longest gap between two bytes of a request body before the request is refused with 408. */
    readonly body_idle_seconds: number;
  };
  /**
   * `http2`: speak HTTP/2 to the router when it offers it (ALPN), many streams per pinned connection:
   * `'streams'` for streamed answers only (requests asking `"stream": true`; the rest over HTTP/1.1),
   * `true` for every request but a streamed upload, `false` never.
   */
  readonly pool: { readonly connections: number; readonly keep_alive_seconds: number; readonly http2: Http2Use };
  readonly attestation: {
    readonly mode: 'enforce' | 'warn' | 'off';
    /** Pinned Ed25519 release-root key (PEM, JWK or hex); required unless mode is off. */
    readonly release_root_file: string | null;
    /** Where the trust bundle may come from: an https URL (the envelope must name it) or a file. */
    readonly trust_bundle: string;
    /**
     * Refuse evidence that does not sign our nonce even where the protocol leaves it optional (the
     * Tresor SNP envelope's REPORT_DATA[32:64]); aci, near and the Nitro envelope require it anyway.
     */
    readonly require_nonce: boolean;
    readonly allow_debug: boolean;
    /**
     * PEM file of test roots (the simulator's) trusted besides the pinned vendor roots in `certs/`;
     * the file must exist. Logged as a warning, shown on /status and in every audit record.
     */
    readonly test_roots_file: string | null;
    /** Start a profile whose evidence cannot bind the TLS channel (pinaivu); its pins say `channel: unbound`. */
    readonly allow_unbound_channel: boolean;
    /** Cap on how long a verified TLS key stays pinned (the envelope's max_age_seconds may be shorter). */
    readonly max_age_seconds: number;
    readonly refresh_ahead_seconds: number;
  };
  readonly aci: {
    /** SEV-SNP MEASUREMENT or TDX MRTD (96 lowercase hex) the router's TEE must report; required for profile aci unless attestation is off. */
    readonly allowed_measurements: readonly string[];
    /** Deprecated: an AMD ARK (PEM) counted as a test root, as if listed in attestation.test_roots_file. */
    readonly amd_ark_file: string | null;
    /** Receipts must carry an `upstream.verified` event with result "verified" where required. */
    readonly require_upstream_verified: boolean;
  };
  readonly near: {
    /** TDX MRTDs (96 lowercase hex) the gateway and model nodes may run; required for profile near unless attestation is off. */
    readonly allowed_measurements: readonly string[];
  };
  /** Intel TDX evidence, whichever profile meets it (aci with tee_type tdx, near). */
  readonly tdx: {
    /** Deprecated: an Intel root (PEM) counted as a test root, as if listed in attestation.test_roots_file. */
    readonly intel_root_file: string | null;
    /** Alternative allowed RTMR0-2 sets (96 lowercase hex each; absent members unconstrained); empty = not constrained. */
    readonly allowed_rtmrs: readonly { readonly rtmr0?: string; readonly rtmr1?: string; readonly rtmr2?: string }[];
    /** Allowed dstack compose hashes (64 hex); non-empty = the evidence must carry the event log, RTMR3 must replay from it. */
    readonly allowed_compose_hashes: readonly string[];
    /** Intel DCAP collateral (QuoteCollateralV3 JSON) for the platform's FMSPC; null = TCB status unknown. */
    readonly collateral_file: string | null;
    /** A directory of `<fmspc>.json` collateral files (lowercase FMSPC): the one for each quote's platform is used. */
    readonly collateral_dir: string | null;
    /** A PCCS (Intel PCS API v4) to fetch collateral from, by FMSPC, cached in `<state_dir>/tdx-collateral/<upstream>/`. */
    readonly pccs_url: string | null;
    /** PEM CA(s) trusted for the PCCS's TLS certificate, on top of the system store. */
    readonly pccs_ca_file: string | null;
    /** Refetch collateral this often, and at the latest this long before its earliest nextUpdate. */
    readonly pccs_refresh_seconds: number;
    /** TCB statuses accepted when collateral is configured (never Revoked). */
    readonly allowed_tcb_statuses: readonly TcbStatus[];
    /** Minimum tcbEvaluationDataNumber of the collateral. */
    readonly min_tcb_evaluation_data_number: number;
    /** INTEL-SA-nnnnn advisories that refuse a platform whatever its status. */
    readonly blocked_advisories: readonly string[];
    /** Accept TDs without TDATTRIBUTES.SEPT_VE_DISABLE. */
    readonly allow_sept_ve: boolean;
  };
  /** AMD SEV-SNP guest and platform policy, whichever profile meets SNP evidence (tresor, aci with tee_type sev_snp). */
  readonly snp: {
    /** Accept POLICY.MIGRATE_MA (a migration agent may move the guest). */
    readonly allow_migrate_ma: boolean;
    /** Accept SMT (POLICY.SMT, PLATFORM_INFO.SMT_EN). */
    readonly allow_smt: boolean;
    /** Require PLATFORM_INFO.TSME_EN. */
    readonly require_tsme: boolean;
    /** Accept CURRENT_TCB ≠ COMMITTED_TCB (provisional firmware). */
    readonly allow_provisional_firmware: boolean;
    /** LAUNCH_TCB floor (`bl=N,tee=N,snp=N,ucode=N[,fmc=N]` or 16 hex digits), or null. */
    readonly min_launch_tcb: string | null;
    /** REPORTED_TCB floor, same forms; combined with a trust bundle's `min_tcb`, both must hold. */
    readonly min_tcb: string | null;
    /** AMD's CRL for the product (DER, from KDS), checked when set: the ASK/ASVK must not be revoked. */
    readonly crl_file: string | null;
  };
  readonly pinaivu: {
    /** PCR0 (96 lowercase hex) of the coordinator enclave images allowed; required for profile pinaivu unless attestation is off. */
    readonly allowed_pcr0: readonly string[];
    /** Deprecated: a Nitro root (PEM) counted as a test root, as if listed in attestation.test_roots_file. */
    readonly nitro_root_file: string | null;
    /** The coordinator takes no nonce: its attestation document may be at most this old. */
    readonly max_document_age_seconds: number;
  };
  readonly receipts: {
    /** audit: record verdicts, responses flow untouched | strict: hold answers until verified | off. */
    readonly mode: 'audit' | 'strict' | 'off';
    readonly jwks_path: string;
    readonly jwks_max_age_seconds: number;
    readonly jwks_cooldown_seconds: number;
    readonly not_found_grace_seconds: number;
    /** Audit mode: how long after an exchange its receipt fetch starts (off the app's next request); strict mode never waits. */
    readonly fetch_delay_seconds: number;
    readonly deadline_seconds: number;
    readonly fetches_per_second: number;
    readonly concurrency: number;
    readonly max_pending: number;
    /**
     * What the receipt's inference_attestation must show, per evidence kind. Empty: the check is
     * informational (`skip: no policy`); set: required, and a kind without an entry is refused.
     */
    readonly inference_policy: {
      readonly snp: { readonly allowed_measurements: readonly string[] };
      readonly nitro: { readonly allowed_pcrs: readonly Readonly<Record<string, string>>[] };
    };
  };
}

export interface ResolvedConfig {
  readonly log: {
    readonly level: LogLevel;
    readonly format: 'json' | 'pretty';
    /** Resolved path of the log file (rotated by size), or null for stdout. */
    readonly file: string | null;
    readonly max_file_bytes: number;
    readonly retention_files: number;
  };
  readonly state_dir: string;
  readonly audit: {
    /** Resolved: null in the file means `<state_dir>/audit`. */
    readonly dir: string;
    readonly max_file_bytes: number;
    readonly retention_files: number;
    readonly archive_receipts: boolean;
    /** Archive each pin's evidence as received (evidence/<sha256> beside the log) and name it in its records. */
    readonly archive_evidence: boolean;
    /** While records cannot be made durable: fail (refuse new exchanges with 503) | serve (answer and count them). Strict upstreams always fail. */
    readonly disk_full_action: 'fail' | 'serve';
    /** Resolved path of the Ed25519 private key (PKCS#8 PEM) that signs checkpoints, or null for none. */
    readonly signing_key_file: string | null;
    readonly checkpoint_interval_seconds: number;
  };
  /** Export of the audit trail as OpenTelemetry log records (OTEL_EXPORTER_OTLP_* variables win over these). */
  readonly otlp: OtlpConfig;
  readonly shutdown_grace_seconds: number;
  /**
   * The daemon process's heap (`serve` only: a process-wide V8 setting). `heap_growing_percent`: after each full
   * garbage collection the old generation may grow to (1 + p/100) × what survived it before the next (default 75:
   * 1.75×); 0 leaves V8's own factor (up to 4×), under which the garbage of a burst of streams stays resident.
   * `concurrent_array_buffer_sweeping` (default false): false sweeps dead ArrayBuffers within each scavenge, which
   * spares uploads the full collections their buffers start; true keeps V8's own concurrent sweeping (src/util/heap.ts).
   */
  readonly memory: { readonly heap_growing_percent: number; readonly concurrent_array_buffer_sweeping: boolean };
  readonly upstreams: readonly UpstreamConfig[];
  /** Where the file came from, if any (for messages and relative paths). */
  readonly source: string | null;
}

/** Flags given on the command line; they win over everything else. */
export interface ConfigOverrides {
  listen?: string;
  upstream?: string;
  ca_file?: string;
  log_level?: string;
  log_format?: string;
  log_file?: string;
  state_dir?: string;
}
