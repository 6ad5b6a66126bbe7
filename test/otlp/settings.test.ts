import { describe, expect, test } from 'vitest';
import { resolveConfig } from '../../src/config/load.js';
import { parseKeyValues, resolveOtlpSettings } from '../../src/otlp/settings.js';

const cfg = (otlp: Record<string, unknown> = {}) => resolveConfig({ upstreams: [{ attestation: { mode: 'off' } }], otlp }, null).otlp;

describe('OTLP exporter settings: config keys, and the standard OTEL_* variables winning over them', () => {
  test('no endpoint anywhere: no export', () => {
    expect(resolveOtlpSettings(cfg(), {})).toBeUndefined();
  });

  test('a request is at most 4 MiB by default (otlp.max_request_bytes), at least 16 KiB', () => {
    expect(resolveOtlpSettings(cfg({ endpoint: 'http://collector:4318' }), {})).toMatchObject({ batchRecords: 512, maxRequestBytes: 4_194_304 });
    expect(resolveOtlpSettings(cfg({ endpoint: 'http://collector:4318', max_request_bytes: 1_048_576 }), {})?.maxRequestBytes).toBe(1_048_576);
    expect(() => cfg({ max_request_bytes: 1000 })).toThrow('otlp.max_request_bytes: must be >= 16384');
  });

  test('config keys alone', () => {
    const s = resolveOtlpSettings(cfg({ endpoint: 'http://collector:4318/', headers: { 'x-a': '1' }, protocol: 'http/json', timeout_seconds: 2, service_name: 'side', resource_attributes: { 'k8s.pod.name': 'p-0' } }), {});
    expect(s).toMatchObject({ url: 'http://collector:4318/v1/logs', protocol: 'http/json', headers: { 'x-a': '1' }, timeoutMs: 2000, resource: { 'service.name': 'side', 'k8s.pod.name': 'p-0' } });
  });

  test('the variables win, the logs-specific ones over the general ones, and a logs endpoint is used as given', () => {
    const env = {
      OTEL_EXPORTER_OTLP_ENDPOINT: 'https://general.example:4318',
      OTEL_EXPORTER_OTLP_LOGS_ENDPOINT: 'https://logs.example/custom/path',
      OTEL_EXPORTER_OTLP_HEADERS: 'x-a=2,authorization=Bearer%20t',
      OTEL_EXPORTER_OTLP_LOGS_HEADERS: 'x-b=3',
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_EXPORTER_OTLP_LOGS_PROTOCOL: 'http/protobuf',
      OTEL_EXPORTER_OTLP_TIMEOUT: '1500',
      OTEL_SERVICE_NAME: 'from-env',
      OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment=prod,service.name=overridden-by-OTEL_SERVICE_NAME',
    };
    expect(resolveOtlpSettings(cfg({ endpoint: 'http://file:4318', logs_endpoint: 'http://file/logs', headers: { 'x-a': '1' }, protocol: 'http/json' }), env)).toMatchObject({
      url: 'https://logs.example/custom/path',
      protocol: 'http/protobuf',
      headers: { 'x-a': '2', authorization: 'Bearer t', 'x-b': '3' },
      timeoutMs: 1500,
      resource: { 'service.name': 'from-env', 'deployment.environment': 'prod' },
    });
    // The general variable beats both config keys (a file's logs_endpoint does not outrank the environment).
    expect(resolveOtlpSettings(cfg({ logs_endpoint: 'http://file/logs' }), { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://env:4318' })?.url).toBe('http://env:4318/v1/logs');
    expect(resolveOtlpSettings(cfg({ logs_endpoint: 'http://file/logs', endpoint: 'http://file:1' }), {})?.url).toBe('http://file/logs');
  });

  test('grpc, a bad URL, credentials in the URL and malformed key=value lists are refused with ERR_CONFIG_INVALID', () => {
    expect(() => resolveOtlpSettings(cfg({ endpoint: 'http://c:4317' }), { OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' })).toThrow(expect.objectContaining({ code: 'ERR_CONFIG_INVALID', message: expect.stringContaining('grpc is not') }));
    expect(() => resolveOtlpSettings(cfg(), { OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318' })).toThrow(expect.objectContaining({ code: 'ERR_CONFIG_INVALID' }));
    expect(() => resolveOtlpSettings(cfg({ endpoint: 'https://u:p@c' }), {})).toThrow(/must not contain credentials/);
    expect(() => parseKeyValues('novalue', 'OTEL_EXPORTER_OTLP_HEADERS')).toThrow(/key=value/);
    expect(() => resolveConfig({ otlp: { protocol: 'grpc' } }, null)).toThrow(/otlp/);
  });
});
