import { ConfigError } from '../errors/index.js';

/** The `otlp` config section (docs/cli.md): each key has the standard OTEL_* variable that wins over it. */
export interface OtlpConfig {
  /** Base URL; `/v1/logs` is appended (OTEL_EXPORTER_OTLP_ENDPOINT). */
  readonly endpoint: string | null;
  /** Full URL of the logs signal (OTEL_EXPORTER_OTLP_LOGS_ENDPOINT); wins over `endpoint`. */
  readonly logs_endpoint: string | null;
  /** Sent with every export (OTEL_EXPORTER_OTLP_HEADERS, then OTEL_EXPORTER_OTLP_LOGS_HEADERS, on top). */
  readonly headers: Readonly<Record<string, string>>;
  readonly protocol: OtlpProtocol;
  readonly timeout_seconds: number;
  /** service.name (OTEL_SERVICE_NAME). */
  readonly service_name: string;
  /** Resource attributes (OTEL_RESOURCE_ATTRIBUTES on top). */
  readonly resource_attributes: Readonly<Record<string, string>>;
  /** The chain's name in the central store; null: a UUID kept in `<audit dir>/audit.instance`. */
  readonly instance_id: string | null;
  /** Most records in one export request. */
  readonly batch_records: number;
  /** Largest export request body in bytes, as encoded (a larger batch is sent as smaller ones). */
  readonly max_request_bytes: number;
  /** How often the audit files are read for new records. */
  readonly interval_ms: number;
  /** Longest wait between tries while the collector is unreachable. */
  readonly retry_max_ms: number;
}

export type OtlpProtocol = 'http/protobuf' | 'http/json';
export const OTLP_PROTOCOLS: readonly OtlpProtocol[] = ['http/protobuf', 'http/json'];

/** What the exporter is started with: undefined when no endpoint is configured anywhere. */
export interface OtlpSettings {
  url: string;
  protocol: OtlpProtocol;
  headers: Record<string, string>;
  timeoutMs: number;
  resource: Record<string, string>;
  instanceId: string | null;
  batchRecords: number;
  maxRequestBytes: number;
  intervalMs: number;
  retryMaxMs: number;
}

const LOGS_PATH = 'v1/logs';

/**
 * Resolve the exporter's settings from the config section and the standard OpenTelemetry
 * environment variables (which win, as TRESOR_ATTEST_* variables win over the file). The
 * signal-specific `..._LOGS_...` variables win over the general ones.
 */
export function resolveOtlpSettings(cfg: OtlpConfig, env: Readonly<Record<string, string | undefined>>): OtlpSettings | undefined {
  const get = (k: string) => (env[k] === undefined || env[k] === '' ? undefined : (env[k] as string).trim());
  const logsUrl = get('OTEL_EXPORTER_OTLP_LOGS_ENDPOINT') ?? (get('OTEL_EXPORTER_OTLP_ENDPOINT') ? undefined : cfg.logs_endpoint ?? undefined);
  const base = get('OTEL_EXPORTER_OTLP_ENDPOINT') ?? cfg.endpoint ?? undefined;
  const url = logsUrl ?? (base !== undefined ? `${base.replace(/\/+$/, '')}/${LOGS_PATH}` : undefined);
  if (url === undefined) return undefined;
  checkUrl(url);
  const protocol = get('OTEL_EXPORTER_OTLP_LOGS_PROTOCOL') ?? get('OTEL_EXPORTER_OTLP_PROTOCOL') ?? cfg.protocol;
  if (!OTLP_PROTOCOLS.includes(protocol as OtlpProtocol)) {
    throw new ConfigError('ERR_CONFIG_INVALID', `OTLP protocol ${JSON.stringify(protocol)} is not supported: use http/protobuf or http/json (grpc is not)`);
  }
  const timeout = get('OTEL_EXPORTER_OTLP_LOGS_TIMEOUT') ?? get('OTEL_EXPORTER_OTLP_TIMEOUT');
  const timeoutMs = timeout !== undefined ? Number(timeout) : cfg.timeout_seconds * 1000;
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new ConfigError('ERR_CONFIG_INVALID', `OTEL_EXPORTER_OTLP_TIMEOUT: must be a positive number of milliseconds, got ${JSON.stringify(timeout)}`);
  const headers = { ...cfg.headers, ...parseKeyValues(get('OTEL_EXPORTER_OTLP_HEADERS'), 'OTEL_EXPORTER_OTLP_HEADERS'), ...parseKeyValues(get('OTEL_EXPORTER_OTLP_LOGS_HEADERS'), 'OTEL_EXPORTER_OTLP_LOGS_HEADERS') };
  const resource = { 'service.name': cfg.service_name, ...cfg.resource_attributes, ...parseKeyValues(get('OTEL_RESOURCE_ATTRIBUTES'), 'OTEL_RESOURCE_ATTRIBUTES') };
  const serviceName = get('OTEL_SERVICE_NAME');
  if (serviceName !== undefined) resource['service.name'] = serviceName;
  return { url, protocol: protocol as OtlpProtocol, headers, timeoutMs, resource, instanceId: cfg.instance_id, batchRecords: cfg.batch_records, maxRequestBytes: cfg.max_request_bytes, intervalMs: cfg.interval_ms, retryMaxMs: cfg.retry_max_ms };
}

/** The W3C Baggage-like `key1=value1,key2=value2` list the OTEL_* variables use (values percent-encoded). */
export function parseKeyValues(text: string | undefined, name: string): Record<string, string> {
  const out: Record<string, string> = {};
  if (!text) return out;
  for (const part of text.split(',')) {
    if (part.trim() === '') continue;
    const eq = part.indexOf('=');
    if (eq <= 0) throw new ConfigError('ERR_CONFIG_INVALID', `${name}: expected key=value pairs separated by commas`);
    try {
      out[decodeURIComponent(part.slice(0, eq).trim())] = decodeURIComponent(part.slice(eq + 1).trim());
    } catch (e) {
      throw new ConfigError('ERR_CONFIG_INVALID', `${name}: a key or value is not valid percent-encoding`, { cause: e });
    }
  }
  return out;
}

function checkUrl(url: string): void {
  let u: URL;
  try {
    u = new URL(url);
  } catch (e) {
    throw new ConfigError('ERR_CONFIG_INVALID', `OTLP endpoint ${JSON.stringify(url)} is not an absolute URL`, { cause: e });
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new ConfigError('ERR_CONFIG_INVALID', `OTLP endpoint ${JSON.stringify(url)}: must be http or https`);
  if (u.username || u.password) throw new ConfigError('ERR_CONFIG_INVALID', 'OTLP endpoint: must not contain credentials (use otlp.headers or OTEL_EXPORTER_OTLP_HEADERS)');
}
