import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { DaemonMetrics } from '../../src/metrics/metrics.js';
import { routeLabel, statusClass } from '../../src/metrics/routes.js';
import { REAL_KEY, startHarness, type Harness } from '../helpers/harness.js';
import { parsePrometheusText, sumOf, valueOf, type Family } from './prom-text.js';

async function scrape(h: Harness): Promise<{ families: Map<string, Family>; text: string }> {
  const res = await fetch(`${h.origin}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  const text = await res.text();
  return { families: parsePrometheusText(text), text };
}

/** prom-client's default process metrics (prefixed). */
const PROCESS_FAMILY = /^tresor_attest_(process_|nodejs_)/;

function allLabelValues(families: Map<string, Family>): string[] {
  return [...families.values()].flatMap((f) => f.samples.flatMap((s) => Object.values(s.labels)));
}

describe('the strict exposition parser used here', () => {
  test('rejects malformed expositions', () => {
    expect(() => parsePrometheusText('x_total 1\n')).toThrow(/before its TYPE/);
    expect(() => parsePrometheusText('# TYPE x_total counter\nx_total{a="1} 1\n')).toThrow();
    expect(() => parsePrometheusText('# TYPE x_total counter\nx_total 1\nx_total 2\n')).toThrow(/duplicate/);
    expect(() => parsePrometheusText('# TYPE x_total counter\nx_total -1\n')).toThrow(/negative/);
    expect(() => parsePrometheusText('# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_count 1\nh_sum 0\n')).toThrow(/cumulative/);
    expect(() => parsePrometheusText('# TYPE g gauge\ng 1')).toThrow(/newline/);
    const ok = parsePrometheusText('# HELP g a \\"gauge\\"\n# TYPE g gauge\ng{a="x\\"y\\\\z\\n"} 1.5e3\n');
    expect(valueOf(ok, 'g', { a: 'x"y\\z\n' })).toBe(1500);
  });
});

describe('route and status labels are a fixed vocabulary', () => {
  test('ids and queries never reach a label', () => {
    expect(routeLabel('/v1/chat/completions?x=1')).toBe('/v1/chat/completions');
    expect(routeLabel('/v1/models/secret-model-7')).toBe('/v1/models/{id}');
    expect(routeLabel('/v1/receipts/0fd051cd-c89c-4d94')).toBe('/v1/receipts/{id}');
    expect(routeLabel('/v1/files/file-abc/content')).toBe('other');
    expect(routeLabel('/v1/chat/completions/../../x')).toBe('other');
    expect(statusClass(200)).toBe('2xx');
    expect(statusClass(499)).toBe('client_closed');
    expect(statusClass(0)).toBe('none');
  });

  test('a label worked out once per path is the same label when the path comes again, before and after the memo is full', () => {
    const paths = ['/v1/chat/completions', '/v1/chat/completions?x=1', '/v1/models/', '/v1/models/m-1', '/v1/responses/r?x=/a', '/v1/files/f/content', 'odd'];
    const first = paths.map(routeLabel);
    expect(first).toEqual(['/v1/chat/completions', '/v1/chat/completions', '/v1/models', '/v1/models/{id}', '/v1/responses/{id}', 'other', 'other']);
    for (let i = 0; i < 1500; i++) expect(routeLabel(`/v1/responses/resp-${i}`)).toBe('/v1/responses/{id}');
    expect(paths.map(routeLabel)).toEqual(first);
    expect([100, 199, 200, 302, 404, 499, 503, 599, 600, 99].map(statusClass)).toEqual(['1xx', '1xx', '2xx', '3xx', '4xx', 'client_closed', '5xx', '5xx', 'none', 'none']);
  });
});

describe('GET /metrics after real traffic through the daemon', () => {
  let h: Harness;
  let other: Harness;
  let client: OpenAI;
  const secrets: string[] = [REAL_KEY, 'placeholder-app-key'];
  beforeAll(async () => {
    [h, other] = await Promise.all([startHarness(), startHarness()]);
    client = new OpenAI({ baseURL: h.base, apiKey: 'placeholder-app-key', maxRetries: 0 });
  });
  afterAll(async () => {
    await Promise.all([h?.close(), other?.close()]);
  });

  test('requests, latency, bytes, attestations, receipts, JWKS and bundle fetches; no id, key or body in any label', async () => {
    const prompt = 'metrics-prompt-body-5f3a';
    secrets.push(prompt);
    const chat = await client.chat.completions.create({ model: 'eu/tresor/gpt-oss-120b', messages: [{ role: 'user', content: prompt }] });
    const stream = await client.chat.completions.create({ model: 'eu/tresor/gpt-oss-120b', messages: [{ role: 'user', content: prompt }], stream: true });
    for await (const chunk of stream) void chunk;
    await client.models.list();
    const byId = await fetch(`${h.base}/models/private-model-id-77`, { headers: { 'x-request-id': 'req-id-metrics-1' } });
    await byId.arrayBuffer();
    secrets.push('private-model-id-77', 'req-id-metrics-1');
    const receiptId = (chat as unknown as { tresor: { receipt_id: string } }).tresor.receipt_id;
    secrets.push(receiptId);
    // Wait for the verdict of both receipts.
    const v = await fetch(`${h.origin}/receipts/${receiptId}?wait=10`);
    expect(((await v.json()) as { verdict: string }).verdict).toBe('verified');
    const deadline = Date.now() + 10_000;
    let scraped = await scrape(h);
    while (valueOf(scraped.families, 'tresor_attest_receipts_total', { verdict: 'verified' }) !== 2 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      scraped = await scrape(h);
    }
    const { families, text } = scraped;
    const u = { upstream: 'tresor' };

    expect(valueOf(families, 'tresor_attest_http_requests_total', { ...u, route: '/v1/chat/completions', method: 'POST', status_class: '2xx' })).toBe(2);
    expect(valueOf(families, 'tresor_attest_http_requests_total', { ...u, route: '/v1/models', method: 'GET', status_class: '2xx' })).toBe(1);
    expect(sumOf(families, 'tresor_attest_http_requests_total', { ...u, route: '/v1/models/{id}' })).toBe(1);
    expect(valueOf(families, 'tresor_attest_http_request_duration_seconds_count', { ...u, route: '/v1/chat/completions', status_class: '2xx' })).toBe(2);
    expect(valueOf(families, 'tresor_attest_http_request_duration_seconds_sum', { ...u, route: '/v1/chat/completions', status_class: '2xx' })).toBeGreaterThan(0);
    const status = (await (await fetch(`${h.origin}/status`)).json()) as { upstreams: { counters: { bytesIn: number; bytesOut: number } }[] };
    expect(valueOf(families, 'tresor_attest_request_body_bytes_total', u)).toBe(status.upstreams[0]?.counters.bytesIn);
    expect(valueOf(families, 'tresor_attest_response_body_bytes_total', u)).toBe(status.upstreams[0]?.counters.bytesOut);
    expect(valueOf(families, 'tresor_attest_response_body_bytes_total', u)).toBeGreaterThan(500);
    expect(valueOf(families, 'tresor_attest_http_requests_in_flight', u)).toBe(0);
    expect(sumOf(families, 'tresor_attest_attestations_total', { ...u, result: 'verified' })).toBeGreaterThanOrEqual(1);
    expect(sumOf(families, 'tresor_attest_attestations_total', { ...u, result: 'failed' })).toBe(0);
    expect(valueOf(families, 'tresor_attest_upstream_ready', u)).toBe(1);
    const expiry = valueOf(families, 'tresor_attest_attestation_expiry_timestamp_seconds', u) as number;
    expect(expiry * 1000).toBeGreaterThan(Date.now());
    expect(valueOf(families, 'tresor_attest_receipts_total', { upstream: 'tresor', verdict: 'verified' })).toBe(2);
    expect(valueOf(families, 'tresor_attest_receipts_total', { verdict: 'failed' })).toBe(0);
    expect(valueOf(families, 'tresor_attest_receipt_jobs_journaled_total')).toBe(2);
    expect(valueOf(families, 'tresor_attest_receipt_jobs_pending')).toBe(0);
    // Each completion's wait for its journal entry, in fine buckets below 5 ms.
    expect(valueOf(families, 'tresor_attest_receipt_journal_seconds_count', u)).toBe(2);
    expect(valueOf(families, 'tresor_attest_receipt_journal_seconds_sum', u)).toBeGreaterThan(0);
    expect(valueOf(families, 'tresor_attest_jwks_fetches_total', { ...u, result: 'ok' })).toBeGreaterThanOrEqual(1);
    expect(valueOf(families, 'tresor_attest_trust_bundle_fetches_total', { ...u, result: 'ok' })).toBeGreaterThanOrEqual(1);
    expect(families.get('tresor_attest_process_resident_memory_bytes')?.type).toBe('gauge');
    // Names follow the conventions: counters end in _total, units are base units.
    for (const f of families.values()) {
      expect(f.name).toMatch(/^tresor_attest_/);
      if (f.type === 'counter') expect(f.name).toMatch(/_total$/);
      expect(f.help.length).toBeGreaterThan(0);
    }
    // No key, body, receipt id, request id or model id anywhere (labels or otherwise).
    for (const s of secrets) expect(text).not.toContain(s);
    // The daemon's own families: every label value from its fixed vocabulary.
    const allowed: Record<string, RegExp> = {
      upstream: /^tresor$/,
      route: /^(\/v1\/[a-z/]+(\/\{id\})?|other)$/,
      method: /^(GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS|other)$/,
      status_class: /^([1-5]xx|none|client_closed)$/,
      result: /^(verified|failed|ok|error)$/,
      reason: /^(startup|connection|refresh)$/,
      code: /^(ERR_[A-Z0-9_]+|client_closed|other|)$/,
      verdict: /^(verified|failed|missing|opted_out|unverifiable)$/,
      le: /^([0-9.]+|\+Inf)$/,
    };
    const own = new Map([...families].filter(([, f]) => f.help && !PROCESS_FAMILY.test(f.name)));
    expect(own.size).toBeGreaterThan(10);
    for (const f of own.values()) {
      for (const s of f.samples) {
        for (const [k, value] of Object.entries(s.labels)) {
          expect(allowed[k], `${f.name}: unexpected label ${k}`).toBeDefined();
          expect(value, `${f.name}{${k}}`).toMatch(allowed[k] as RegExp);
        }
      }
    }
    // Nor in the daemon's log lines of the same run.
    for (const s of [REAL_KEY, 'placeholder-app-key', prompt]) expect(h.logs.text).not.toContain(s);
    // The process metrics (prom-client's defaults) carry only process facts.
    for (const value of allLabelValues(families)) for (const s of secrets) expect(value).not.toContain(s);

    // One registry per daemon: the other daemon saw no chat traffic.
    const second = await scrape(other);
    expect(sumOf(second.families, 'tresor_attest_http_requests_total')).toBe(0);
    expect(sumOf(second.families, 'tresor_attest_attestations_total', { result: 'verified' })).toBeGreaterThanOrEqual(1);
  });
});

describe('attestation failures in /metrics', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ evidenceFaults: { wrongMeasurement: true } });
  });
  afterAll(() => h.close());

  test('a refused router shows as failed verifications with their code, not ready, and 5xx requests', async () => {
    const res = await fetch(`${h.base}/models`);
    expect(res.status).toBe(502);
    await res.arrayBuffer();
    const { families } = await scrape(h);
    const failed = families.get('tresor_attest_attestations_total')?.samples.filter((s) => s.labels.result === 'failed') ?? [];
    expect(failed.length).toBeGreaterThan(0);
    for (const s of failed) expect(s.labels.code).toMatch(/^ERR_[A-Z0-9_]+$/);
    expect(valueOf(families, 'tresor_attest_upstream_ready', { upstream: 'tresor' })).toBe(0);
    expect(valueOf(families, 'tresor_attest_http_requests_total', { upstream: 'tresor', route: '/v1/models', status_class: '5xx' })).toBe(1);
    expect(sumOf(families, 'tresor_attest_request_errors_total', { upstream: 'tresor' })).toBe(1);
    expect(valueOf(families, 'tresor_attest_attestation_expiry_timestamp_seconds', { upstream: 'tresor' })).toBeUndefined();
  });
});

describe('per-request counters, tallied between scrapes', () => {
  test('every scrape shows every request observed before it, cumulatively; a byte counter appears only once bytes flowed', async () => {
    const m = new DaemonMetrics({ upstreams: () => [], receipts: () => undefined }, { processMetrics: false });
    const families = async () => parsePrometheusText((await m.exposition()).body);
    const chat = { upstream: 'u', method: 'POST', path: '/v1/chat/completions', status: 200, seconds: 0.02, requestBytes: 0, responseBytes: 0 };
    m.observeRequest(chat);
    let f = await families();
    expect(valueOf(f, 'tresor_attest_http_requests_total', { upstream: 'u', route: '/v1/chat/completions', method: 'POST', status_class: '2xx' })).toBe(1);
    expect(valueOf(f, 'tresor_attest_request_body_bytes_total', { upstream: 'u' })).toBeUndefined();
    for (let i = 0; i < 3; i++) m.observeRequest({ ...chat, requestBytes: 100, responseBytes: 1000 });
    m.observeRequest({ ...chat, method: 'GET', path: '/v1/models', status: 502, error: 'ERR_UPSTREAM_FAILED' });
    f = await families();
    expect(valueOf(f, 'tresor_attest_http_requests_total', { upstream: 'u', route: '/v1/chat/completions', method: 'POST', status_class: '2xx' })).toBe(4);
    expect(valueOf(f, 'tresor_attest_http_requests_total', { upstream: 'u', route: '/v1/models', method: 'GET', status_class: '5xx' })).toBe(1);
    expect(valueOf(f, 'tresor_attest_request_body_bytes_total', { upstream: 'u' })).toBe(300);
    expect(valueOf(f, 'tresor_attest_response_body_bytes_total', { upstream: 'u' })).toBe(3000);
    expect(valueOf(f, 'tresor_attest_http_request_duration_seconds_count', { upstream: 'u', route: '/v1/chat/completions', status_class: '2xx' })).toBe(4);
    // Nothing new: a second read shows the same values (not added twice, not lost).
    f = await families();
    expect(valueOf(f, 'tresor_attest_http_requests_total', { upstream: 'u', route: '/v1/chat/completions', method: 'POST', status_class: '2xx' })).toBe(4);
    expect(valueOf(f, 'tresor_attest_request_body_bytes_total', { upstream: 'u' })).toBe(300);
  });
});
