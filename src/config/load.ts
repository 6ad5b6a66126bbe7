import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { Ajv, type ErrorObject } from 'ajv';
import { parseDocument } from 'yaml';
import { ConfigError } from '../errors/index.js';
import { configSchema } from './schema.js';
import type { ConfigOverrides, ResolvedConfig, UpstreamConfig } from './types.js';

/**
 * Environment variables (TRESOR_ATTEST_*). The single-upstream ones apply to the first
 * upstream. Precedence: flags > environment > file > defaults.
 */
export const ENV_VARS = {
  TRESOR_ATTEST_CONFIG: 'path of the YAML config file',
  TRESOR_ATTEST_LOG_LEVEL: 'log.level',
  TRESOR_ATTEST_LOG_FORMAT: 'log.format',
  TRESOR_ATTEST_LOG_FILE: 'log.file',
  TRESOR_ATTEST_STATE_DIR: 'state_dir',
  TRESOR_ATTEST_SHUTDOWN_GRACE_SECONDS: 'shutdown_grace_seconds',
  TRESOR_ATTEST_LISTEN: 'upstreams[0].listen',
  TRESOR_ATTEST_UPSTREAM_URL: 'upstreams[0].url',
  TRESOR_ATTEST_CA_FILE: 'upstreams[0].ca_file',
  TRESOR_ATTEST_API_KEY_FILE: 'upstreams[0].api_key_file',
  TRESOR_ATTEST_LOCAL_TOKEN_FILE: 'upstreams[0].local_token_file',
  TRESOR_ATTEST_ALLOWED_HOSTS: 'upstreams[0].allowed_hosts (comma-separated)',
  TRESOR_ATTEST_ALLOWED_ORIGINS: 'upstreams[0].allowed_origins (comma-separated)',
  TRESOR_ATTEST_MAX_BODY_BYTES: 'upstreams[0].max_body_bytes',
  TRESOR_ATTEST_ATTESTATION_MODE: 'upstreams[0].attestation.mode',
  TRESOR_ATTEST_RELEASE_ROOT_FILE: 'upstreams[0].attestation.release_root_file',
  TRESOR_ATTEST_TRUST_BUNDLE: 'upstreams[0].attestation.trust_bundle',
  TRESOR_ATTEST_TEST_ROOTS_FILE: 'upstreams[0].attestation.test_roots_file',
  TRESOR_ATTEST_RECEIPTS_MODE: 'upstreams[0].receipts.mode',
  TRESOR_ATTEST_AUDIT_DIR: 'audit.dir',
  TRESOR_ATTEST_AUDIT_SIGNING_KEY_FILE: 'audit.signing_key_file',
} as const;

/** Whether a profile's evidence binds the connection's TLS key (README's profile table says the same). */
export const PROFILE_BINDS_CHANNEL: Record<UpstreamConfig['profile'], boolean> = { tresor: true, aci: true, near: true, pinaivu: false };

const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: true, allowUnionTypes: true });
const validate = ajv.compile(configSchema);

export interface LoadConfigOptions {
  /** Config file path; defaults to $TRESOR_ATTEST_CONFIG; no file at all is fine. */
  file?: string | undefined;
  env?: Record<string, string | undefined>;
  overrides?: ConfigOverrides;
}

type Raw = Record<string, unknown>;

export async function loadConfig(opts: LoadConfigOptions = {}): Promise<ResolvedConfig> {
  const env = opts.env ?? process.env;
  const file = opts.file ?? env.TRESOR_ATTEST_CONFIG ?? undefined;
  const raw: Raw = file ? await readConfigFile(file) : {};
  applyEnv(raw, env);
  applyOverrides(raw, opts.overrides ?? {});
  return resolveConfig(raw, file ?? null);
}

/** Validate an already-parsed document (used by loadConfig and by tests). */
export function resolveConfig(raw: Raw, source: string | null): ResolvedConfig {
  const doc = structuredClone(raw);
  if (!validate(doc)) {
    // Report every problem at once: schema errors plus the URL checks the schema cannot express.
    const lines = formatErrors(validate.errors ?? []);
    const list = Array.isArray(raw.upstreams) ? raw.upstreams : [];
    list.forEach((u, i) => {
      const url = (u as Raw | null)?.url;
      const problem = typeof url === 'string' ? checkUpstreamUrl(url) : undefined;
      if (problem) lines.push(`upstreams[${i}].url: ${problem}`);
    });
    throw new ConfigError('ERR_CONFIG_INVALID', prefixSource(lines, source));
  }
  const cfg = doc as unknown as {
    log: ResolvedConfig['log'];
    state_dir: string;
    audit: Omit<ResolvedConfig['audit'], 'dir'> & { dir: string | null };
    otlp: ResolvedConfig['otlp'];
    shutdown_grace_seconds: number;
    memory: ResolvedConfig['memory'];
    upstreams: (Omit<UpstreamConfig, 'listen'> & { listen: string })[];
  };
  const base = source ? dirname(resolve(source)) : process.cwd();
  const problems: string[] = [];
  const names = new Set<string>();
  const listens = new Set<string>();
  const upstreams = cfg.upstreams.map((u, i): UpstreamConfig => {
    const at = `upstreams[${i}]`;
    if (names.has(u.name)) problems.push(`${at}.name: duplicate upstream name "${u.name}"`);
    names.add(u.name);
    const urlProblem = checkUpstreamUrl(u.url);
    if (urlProblem) problems.push(`${at}.url: ${urlProblem}`);
    const listen = parseListen(u.listen);
    if (typeof listen === 'string') problems.push(`${at}.listen: ${listen}`);
    else {
      const key = `${listen.host}:${listen.port}`;
      if (listen.port !== 0 && listens.has(key)) problems.push(`${at}.listen: ${u.listen} is already used by another upstream`);
      listens.add(key);
      if (!isLoopbackHost(listen.host) && u.local_token_file === null && !u.allow_unauthenticated_listen) {
        problems.push(
          `${at}.listen: ${u.listen} is not a loopback address: set local_token_file (apps then present that token), or allow_unauthenticated_listen: true to let anyone who can reach it use the upstream`,
        );
      }
    }
    for (const o of u.allowed_origins) {
      const p = checkOrigin(o);
      if (p) problems.push(`${at}.allowed_origins: ${p}`);
    }
    const att = u.attestation;
    if (u.profile === 'aci' && att.mode !== 'off' && u.aci.allowed_measurements.length === 0) {
      problems.push(`${at}.aci.allowed_measurements: required for profile aci (which TEE measurements may serve), unless attestation.mode is off`);
    }
    if (u.profile === 'near' && att.mode !== 'off' && u.near.allowed_measurements.length === 0) {
      problems.push(`${at}.near.allowed_measurements: required for profile near (which TDX MRTDs may serve and sign), unless attestation.mode is off`);
    }
    if (u.profile === 'pinaivu' && att.mode !== 'off' && u.pinaivu.allowed_pcr0.length === 0) {
      problems.push(`${at}.pinaivu.allowed_pcr0: required for profile pinaivu (which coordinator enclave images may serve), unless attestation.mode is off`);
    }
    if (!PROFILE_BINDS_CHANNEL[u.profile] && att.mode !== 'off' && !att.allow_unbound_channel) {
      problems.push(
        `${at}.attestation.allow_unbound_channel: profile ${u.profile} cannot bind the TLS channel (its evidence binds no TLS key, so a TLS man in the middle with a trusted certificate would see prompts and the API key); set allow_unbound_channel: true to accept that explicitly`,
      );
    }
    if (u.profile === 'tresor' && att.mode !== 'off' && att.release_root_file === null) {
      problems.push(`${at}.attestation.release_root_file: required when attestation.mode is ${att.mode} (to forward without attestation, set attestation.mode: off explicitly)`);
    }
    if (att.mode !== 'off' && !u.url.startsWith('https:')) problems.push(`${at}.attestation.mode: attestation binds a TLS key, so it needs an https upstream url (or mode: off)`);
    if (/^https?:/i.test(att.trust_bundle)) {
      const p = checkUpstreamUrl(att.trust_bundle);
      if (p) problems.push(`${at}.attestation.trust_bundle: ${p}`);
    }
    if (u.tdx.collateral_file !== null && u.tdx.collateral_dir !== null) {
      problems.push(`${at}.tdx.collateral_dir: set either tdx.collateral_file (one platform) or tdx.collateral_dir (by FMSPC), not both`);
    }
    if (u.tdx.pccs_url !== null) {
      if (u.tdx.collateral_file !== null || u.tdx.collateral_dir !== null) problems.push(`${at}.tdx.pccs_url: set one collateral source (tdx.collateral_file, tdx.collateral_dir or tdx.pccs_url), not several`);
      const p = checkUpstreamUrl(u.tdx.pccs_url);
      if (p) problems.push(`${at}.tdx.pccs_url: ${p}`);
    }
    if (u.timeouts.request_seconds > u.timeouts.max_request_seconds) {
      problems.push(`${at}.timeouts.request_seconds: must not exceed max_request_seconds (${u.timeouts.max_request_seconds})`);
    }
    return {
      ...u,
      url: u.url.replace(/\/+$/, ''),
      listen: typeof listen === 'string' ? { host: '127.0.0.1', port: 0 } : listen,
      ca_file: u.ca_file === null ? null : resolvePath(u.ca_file, base),
      api_key_file: u.api_key_file === null ? null : resolvePath(u.api_key_file, base),
      local_token_file: u.local_token_file === null ? null : resolvePath(u.local_token_file, base),
      allowed_origins: u.allowed_origins.map((o) => o.toLowerCase()),
      aci: { ...u.aci, amd_ark_file: u.aci.amd_ark_file === null ? null : resolvePath(u.aci.amd_ark_file, base) },
      tdx: {
        ...u.tdx,
        intel_root_file: u.tdx.intel_root_file === null ? null : resolvePath(u.tdx.intel_root_file, base),
        collateral_file: u.tdx.collateral_file === null ? null : resolvePath(u.tdx.collateral_file, base),
        collateral_dir: u.tdx.collateral_dir === null ? null : resolvePath(u.tdx.collateral_dir, base),
        pccs_ca_file: u.tdx.pccs_ca_file === null ? null : resolvePath(u.tdx.pccs_ca_file, base),
      },
      snp: { ...u.snp, crl_file: u.snp.crl_file === null ? null : resolvePath(u.snp.crl_file, base) },
      pinaivu: { ...u.pinaivu, nitro_root_file: u.pinaivu.nitro_root_file === null ? null : resolvePath(u.pinaivu.nitro_root_file, base) },
      attestation: {
        ...u.attestation,
        release_root_file: u.attestation.release_root_file === null ? null : resolvePath(u.attestation.release_root_file, base),
        test_roots_file: u.attestation.test_roots_file === null ? null : resolvePath(u.attestation.test_roots_file, base),
        trust_bundle: /^https?:/i.test(u.attestation.trust_bundle) ? u.attestation.trust_bundle : resolvePath(u.attestation.trust_bundle, base),
      },
    };
  });
  if (problems.length > 0) throw new ConfigError('ERR_CONFIG_INVALID', prefixSource(problems, source));
  const stateDir = resolvePath(cfg.state_dir, base);
  return deepFreeze({
    log: { ...cfg.log, file: cfg.log.file === null ? null : resolvePath(cfg.log.file, base) },
    state_dir: stateDir,
    audit: {
      ...cfg.audit,
      dir: cfg.audit.dir === null ? join(stateDir, 'audit') : resolvePath(cfg.audit.dir, base),
      signing_key_file: cfg.audit.signing_key_file === null ? null : resolvePath(cfg.audit.signing_key_file, base),
    },
    otlp: cfg.otlp,
    shutdown_grace_seconds: cfg.shutdown_grace_seconds,
    memory: cfg.memory,
    upstreams,
    source,
  });
}

async function readConfigFile(file: string): Promise<Raw> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new ConfigError('ERR_CONFIG_UNREADABLE', `cannot read config file ${file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: true });
  if (doc.errors.length > 0) {
    throw new ConfigError('ERR_CONFIG_YAML', `${file}: ${doc.errors.map((e) => e.message).join('; ')}`);
  }
  const value: unknown = doc.toJS();
  if (value === null || value === undefined) return {};
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new ConfigError('ERR_CONFIG_INVALID', `${file}: the top level must be a mapping of keys`);
  }
  return value as Raw;
}

function firstUpstream(raw: Raw): Raw {
  if (raw.upstreams === undefined) raw.upstreams = [{}];
  const list = raw.upstreams;
  if (!Array.isArray(list) || list.length === 0 || typeof list[0] !== 'object' || list[0] === null) {
    throw new ConfigError('ERR_CONFIG_INVALID', 'upstreams: must be a non-empty list of upstreams');
  }
  return list[0] as Raw;
}

function section(raw: Raw, key: string): Raw {
  const v = raw[key];
  if (v === undefined) return (raw[key] = {}) as Raw;
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ConfigError('ERR_CONFIG_INVALID', `${key}: must be a mapping`);
  return v as Raw;
}

function numberFrom(name: string, value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n)) {
    throw new ConfigError('ERR_CONFIG_INVALID', `${name}: must be a number, got ${JSON.stringify(value)}`);
  }
  return n;
}

function listFrom(value: string): string[] {
  return value.split(',').map((v) => v.trim()).filter((v) => v !== '');
}

function applyEnv(raw: Raw, env: Record<string, string | undefined>): void {
  const get = (k: string) => {
    const v = env[k];
    return v === undefined || v === '' ? undefined : v;
  };
  const set = (k: string, fn: (v: string) => void) => {
    const v = get(k);
    if (v !== undefined) fn(v);
  };
  set('TRESOR_ATTEST_LOG_LEVEL', (v) => (section(raw, 'log').level = v));
  set('TRESOR_ATTEST_LOG_FORMAT', (v) => (section(raw, 'log').format = v));
  set('TRESOR_ATTEST_LOG_FILE', (v) => (section(raw, 'log').file = v));
  set('TRESOR_ATTEST_STATE_DIR', (v) => (raw.state_dir = v));
  set('TRESOR_ATTEST_SHUTDOWN_GRACE_SECONDS', (v) => (raw.shutdown_grace_seconds = numberFrom('TRESOR_ATTEST_SHUTDOWN_GRACE_SECONDS', v)));
  set('TRESOR_ATTEST_LISTEN', (v) => (firstUpstream(raw).listen = v));
  set('TRESOR_ATTEST_UPSTREAM_URL', (v) => (firstUpstream(raw).url = v));
  set('TRESOR_ATTEST_CA_FILE', (v) => (firstUpstream(raw).ca_file = v));
  set('TRESOR_ATTEST_API_KEY_FILE', (v) => (firstUpstream(raw).api_key_file = v));
  set('TRESOR_ATTEST_LOCAL_TOKEN_FILE', (v) => (firstUpstream(raw).local_token_file = v));
  set('TRESOR_ATTEST_ALLOWED_HOSTS', (v) => (firstUpstream(raw).allowed_hosts = listFrom(v)));
  set('TRESOR_ATTEST_ALLOWED_ORIGINS', (v) => (firstUpstream(raw).allowed_origins = listFrom(v)));
  set('TRESOR_ATTEST_MAX_BODY_BYTES', (v) => (firstUpstream(raw).max_body_bytes = numberFrom('TRESOR_ATTEST_MAX_BODY_BYTES', v)));
  set('TRESOR_ATTEST_ATTESTATION_MODE', (v) => (section(firstUpstream(raw), 'attestation').mode = v));
  set('TRESOR_ATTEST_RELEASE_ROOT_FILE', (v) => (section(firstUpstream(raw), 'attestation').release_root_file = v));
  set('TRESOR_ATTEST_TRUST_BUNDLE', (v) => (section(firstUpstream(raw), 'attestation').trust_bundle = v));
  set('TRESOR_ATTEST_TEST_ROOTS_FILE', (v) => (section(firstUpstream(raw), 'attestation').test_roots_file = v));
  set('TRESOR_ATTEST_RECEIPTS_MODE', (v) => (section(firstUpstream(raw), 'receipts').mode = v));
  set('TRESOR_ATTEST_AUDIT_DIR', (v) => (section(raw, 'audit').dir = v));
  set('TRESOR_ATTEST_AUDIT_SIGNING_KEY_FILE', (v) => (section(raw, 'audit').signing_key_file = v));
}

function applyOverrides(raw: Raw, o: ConfigOverrides): void {
  if (o.log_level !== undefined) section(raw, 'log').level = o.log_level;
  if (o.log_format !== undefined) section(raw, 'log').format = o.log_format;
  if (o.log_file !== undefined) section(raw, 'log').file = o.log_file;
  if (o.state_dir !== undefined) raw.state_dir = o.state_dir;
  if (o.listen !== undefined) firstUpstream(raw).listen = o.listen;
  if (o.upstream !== undefined) firstUpstream(raw).url = o.upstream;
  if (o.ca_file !== undefined) firstUpstream(raw).ca_file = o.ca_file;
}

const LOOPBACK = new Set(['localhost', '127.0.0.1', '[::1]', '::1']);

export function isLoopbackHost(host: string): boolean {
  return LOOPBACK.has(host.toLowerCase()) || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** https, or plain http only to loopback (the simulator, tests); no credentials, query or fragment. */
export function checkUpstreamUrl(value: string): string | undefined {
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    return `must be an absolute URL, got ${JSON.stringify(value)}`;
  }
  if (u.protocol !== 'https:' && !(u.protocol === 'http:' && isLoopbackHost(u.hostname))) {
    return 'must be an https URL (plain http only to loopback)';
  }
  if (u.username || u.password) return 'must not contain credentials (use api_key_env or api_key_file)';
  if (u.search || u.hash) return 'must not contain a query or fragment';
  return undefined;
}

/** A browser origin as browsers send it: scheme, host, port only when not the default. */
function checkOrigin(value: string): string | undefined {
  let origin: string;
  try {
    origin = new URL(value).origin;
  } catch {
    origin = 'null';
  }
  return origin === value.toLowerCase() ? undefined : `expected an origin such as http://localhost:3000 (scheme, host, a port only when not the default, no path), got ${JSON.stringify(value)}`;
}

export function parseListen(value: string): { host: string; port: number } | string {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(value);
  if (!m) return `expected HOST:PORT (e.g. 127.0.0.1:8787 or [::1]:8787), got ${JSON.stringify(value)}`;
  const port = Number(m[3]);
  if (port > 65535) return `port ${port} is out of range`;
  return { host: (m[1] ?? m[2]) as string, port };
}

function resolvePath(p: string, base: string): string {
  if (p === '~' || p.startsWith('~/')) return resolve(homedir(), p.slice(2));
  return isAbsolute(p) ? p : resolve(base, p);
}

function formatErrors(errors: ErrorObject[]): string[] {
  const lines = errors.map((e) => {
    const path = e.instancePath
      .split('/')
      .slice(1)
      .map((seg) => (/^\d+$/.test(seg) ? `[${seg}]` : `.${seg}`))
      .join('')
      .replace(/^\./, '');
    if (e.keyword === 'additionalProperties') {
      const key = (e.params as { additionalProperty: string }).additionalProperty;
      return `${path ? `${path}.` : ''}${key}: unknown key`;
    }
    if (e.keyword === 'enum') {
      return `${path}: must be one of ${(e.params as { allowedValues: unknown[] }).allowedValues.map((v) => JSON.stringify(v)).join(', ')}`;
    }
    return `${path || '(top level)'}: ${e.message ?? 'is invalid'}`;
  });
  return [...new Set(lines)];
}

function prefixSource(problems: string[], source: string | null): string {
  const where = source ? `invalid configuration in ${source}` : 'invalid configuration';
  return problems.length === 1 ? `${where}: ${problems[0]}` : `${where}:\n  - ${problems.join('\n  - ')}`;
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object') {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}

/** The effective settings for display: secrets are never in the config, but key sources are shown, not read. */
export function describeConfig(cfg: ResolvedConfig): Record<string, unknown> {
  return {
    log: cfg.log,
    state_dir: cfg.state_dir,
    audit: cfg.audit,
    shutdown_grace_seconds: cfg.shutdown_grace_seconds,
    memory: cfg.memory,
    upstreams: cfg.upstreams.map((u) => ({
      ...u,
      listen: `${u.listen.host.includes(':') ? `[${u.listen.host}]` : u.listen.host}:${u.listen.port}`,
      api_key: apiKeySourceDescription(u),
      local_token: u.local_token_file ? `from file ${u.local_token_file} (****)` : 'none',
    })),
  };
}

function apiKeySourceDescription(u: UpstreamConfig): string {
  if (u.api_key_file) return `from file ${u.api_key_file} (****)`;
  if (u.api_key_env) return process.env[u.api_key_env] ? `from $${u.api_key_env} (****)` : `$${u.api_key_env} not set: the app's own Authorization is passed through`;
  return "none: the app's own Authorization is passed through";
}
