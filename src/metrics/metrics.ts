import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import type { AttestationEvent } from '../attestation/manager.js';
import { codeLabel, methodLabel, routeLabel, statusClass } from './routes.js';
import { TalliedHistogram, type Series } from './tallied-histogram.js';
import { FINAL_VERDICTS } from '../receipts/record.js';

/**
 * The daemon's Prometheus metrics: one registry per daemon instance (several daemons can run in
 * one process, as in the tests). Label values come from fixed vocabularies only (upstream names
 * from the config, route templates, status classes, `ERR_*` codes, verdicts): never an id, a key,
 * a header or a body.
 */
export interface RequestObservation {
  upstream: string;
  method: string | undefined;
  /** Path as forwarded (reduced to a route template here). */
  path: string;
  status: number;
  seconds: number;
  requestBytes: number;
  responseBytes: number;
  /** The error code, when the exchange failed. */
  error?: string | undefined;
}

/** What the metrics read at scrape time. */
export interface MetricSources {
  upstreams(): Iterable<{ name: string; inFlight: number; ready: boolean; attestationExpiresAt?: string | undefined }>;
  receipts(): { counters: Readonly<Record<string, number>>; pending: number; byUpstream: ReadonlyMap<string, Readonly<Partial<Record<string, number>>>> } | undefined;
  /** The audit trail's health (undefined when receipts are off everywhere). */
  audit?(): { writable: boolean; held: number; failures: Readonly<Record<string, number>>; servedUnrecorded: number } | undefined;
  /** The OTLP export of the audit trail (undefined when not configured). */
  otlp?(): { lag: number; exported: number; failures: number; dropped: number } | undefined;
}

export type FetchResult = 'ok' | 'error';


/** Latency buckets (seconds): proxy overhead up to the router's 600 s maximum request budget. */
const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];

/** A label set's count, held as a plain number until prom-client reads the counter (see DaemonMetrics.requestTallies). */
interface Tally {
  readonly labels: Record<string, string>;
  n: number;
}

/** A request label set's count, and the duration series of its (upstream, route, status class). */
interface RequestTally extends Tally {
  readonly duration: Series;
}

/** Hand what was tallied since the last read to `counter` (its `collect`, run on every read). */
function flushTallies(counter: Counter<string>, tallies: Iterable<Tally>): void {
  for (const t of tallies) {
    if (t.n === 0) continue;
    counter.inc(t.labels, t.n);
    t.n = 0;
  }
}

/** Per upstream: its byte tallies (one lookup for both), made the first time. */
function bytesTallies(tallies: Map<string, { in: Tally; out: Tally }>, upstream: string): { in: Tally; out: Tally } {
  let t = tallies.get(upstream);
  if (!t) tallies.set(upstream, (t = { in: { labels: { upstream }, n: 0 }, out: { labels: { upstream }, n: 0 } }));
  return t;
}

export class DaemonMetrics {
  readonly registry = new Registry();
  /**
   * The per-request counters (requests, request and response bytes) are tallied here, one Map
   * lookup per request, and added to prom-client's counters when they are read (their `collect`):
   * prom-client validates and hashes the label set on every `inc`. What a scrape shows is the same.
   * The request's tally also holds its duration series (TalliedHistogram): one lookup for both.
   */
  private readonly requestTallies = new Map<string, RequestTally>();
  private readonly byteTallies = new Map<string, { in: Tally; out: Tally }>();
  private readonly requests: Counter<'upstream' | 'route' | 'method' | 'status_class'>;
  private readonly duration: TalliedHistogram;
  private readonly journal: TalliedHistogram;
  private readonly bytesIn: Counter<'upstream'>;
  private readonly bytesOut: Counter<'upstream'>;
  private readonly errors: Counter<'upstream' | 'code'>;
  private readonly attestations: Counter<'upstream' | 'result' | 'code' | 'reason'>;
  private readonly jwks: Counter<'upstream' | 'result'>;
  private readonly bundles: Counter<'upstream' | 'result'>;
  private readonly localAuth: Counter<'upstream'>;
  private readonly refused: Counter<'upstream' | 'reason'>;
  private readonly verdictHeaders: Counter<'upstream' | 'family'>;

  constructor(sources: MetricSources, opts: { processMetrics?: boolean } = {}) {
    const registers = [this.registry];
    this.requests = new Counter({
      name: 'tresor_attest_http_requests_total',
      help: 'Requests forwarded (or refused) per upstream, route template, method and status class.',
      labelNames: ['upstream', 'route', 'method', 'status_class'],
      registers,
      collect: () => flushTallies(this.requests, this.requestTallies.values()),
    });
    // Labels: upstream, route, status_class.
    this.duration = new TalliedHistogram('tresor_attest_http_request_duration_seconds', 'Time from the request arriving to the last byte of the response (streams included).', DURATION_BUCKETS, registers);
    // Once per completion: tallied like the request duration (prom-client's observe hashes its labels per call).
    // Fine below 5 ms: this is one disk flush, and the figure operators (and the benchmark) compare with 1 ms.
    this.journal = new TalliedHistogram(
      'tresor_attest_receipt_journal_seconds',
      'How long the end of an answer waited for its receipt job to be journaled durably (write and fdatasync).',
      [0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.005, 0.01, 0.025, 0.1, 1],
      registers,
    );
    this.bytesIn = new Counter({ name: 'tresor_attest_request_body_bytes_total', help: 'Request body bytes forwarded to the upstream.', labelNames: ['upstream'], registers, collect: () => flushTallies(this.bytesIn, [...this.byteTallies.values()].map((t) => t.in)) });
    this.bytesOut = new Counter({ name: 'tresor_attest_response_body_bytes_total', help: 'Response body bytes streamed back to apps.', labelNames: ['upstream'], registers, collect: () => flushTallies(this.bytesOut, [...this.byteTallies.values()].map((t) => t.out)) });
    this.errors = new Counter({ name: 'tresor_attest_request_errors_total', help: 'Exchanges that ended in an error, by error code.', labelNames: ['upstream', 'code'], registers });
    this.attestations = new Counter({
      name: 'tresor_attest_attestations_total',
      help: 'Attestation verifications of upstream TLS connections, by result, error code and reason (startup, connection, refresh).',
      labelNames: ['upstream', 'result', 'code', 'reason'],
      registers,
    });
    this.jwks = new Counter({ name: 'tresor_attest_jwks_fetches_total', help: "Fetches of the router's receipt JWKS, by result.", labelNames: ['upstream', 'result'], registers });
    this.bundles = new Counter({ name: 'tresor_attest_trust_bundle_fetches_total', help: 'Trust bundle fetches and verifications, by result.', labelNames: ['upstream', 'result'], registers });
    this.localAuth = new Counter({ name: 'tresor_attest_local_auth_failures_total', help: 'Requests refused for a missing or wrong local token.', labelNames: ['upstream'], registers });
    this.refused = new Counter({
      name: 'tresor_attest_requests_refused_total',
      help: 'Requests refused before anything was forwarded: a Host not naming the listener (host), a browser origin not allowed (origin), an ambiguous path (path).',
      labelNames: ['upstream', 'reason'],
      registers,
    });
    this.verdictHeaders = new Counter({
      name: 'tresor_attest_router_verdict_headers_dropped_total',
      help: "The router's copies of the daemon's verdict headers (X-Tresor-Attestation*, X-Tresor-Receipt-Verdict, ...), dropped, by header family.",
      labelNames: ['upstream', 'family'],
      registers,
    });
    new Gauge({
      name: 'tresor_attest_http_requests_in_flight',
      help: 'Requests being forwarded now.',
      labelNames: ['upstream'],
      registers,
      collect() {
        for (const u of sources.upstreams()) this.set({ upstream: u.name }, u.inFlight);
      },
    });
    new Gauge({
      name: 'tresor_attest_upstream_ready',
      help: '1 when the upstream may be forwarded to now (attested, or attestation not enforced).',
      labelNames: ['upstream'],
      registers,
      collect() {
        for (const u of sources.upstreams()) this.set({ upstream: u.name }, u.ready ? 1 : 0);
      },
    });
    new Gauge({
      name: 'tresor_attest_attestation_expiry_timestamp_seconds',
      help: 'When the newest verified attestation pin of the upstream expires (Unix seconds).',
      labelNames: ['upstream'],
      registers,
      collect() {
        this.reset();
        for (const u of sources.upstreams()) if (u.attestationExpiresAt) this.set({ upstream: u.name }, Date.parse(u.attestationExpiresAt) / 1000);
      },
    });
    new Counter({
      name: 'tresor_attest_receipts_total',
      help: 'Receipts recorded in the audit log, by upstream and verdict.',
      labelNames: ['upstream', 'verdict'],
      registers,
      collect() {
        const r = sources.receipts();
        if (!r) return;
        this.reset();
        for (const u of sources.upstreams()) for (const v of FINAL_VERDICTS) this.inc({ upstream: u.name, verdict: v }, r.byUpstream.get(u.name)?.[v] ?? 0);
      },
    });
    new Counter({
      name: 'tresor_attest_receipt_jobs_journaled_total',
      help: 'Receipt jobs written to the journal.',
      registers,
      collect() {
        const r = sources.receipts();
        if (!r) return;
        this.reset();
        this.inc(r.counters.journaled ?? 0);
      },
    });
    new Gauge({
      name: 'tresor_attest_receipt_jobs_pending',
      help: 'Receipt jobs journaled and not yet recorded (journal depth).',
      registers,
      collect() {
        this.set(sources.receipts()?.pending ?? 0);
      },
    });
    this.auditMetrics(sources, registers);
    this.otlpMetrics(sources, registers);
    if (opts.processMetrics !== false) {
      collectDefaultMetrics({ register: this.registry, prefix: 'tresor_attest_' });
      // prom-client names three gauges with a counter's `_total` suffix, which `promtool check
      // metrics` (and the naming conventions) reject; each is the sum of the per-`type` gauge kept
      // beside it (`sum(tresor_attest_nodejs_active_handles)`).
      for (const name of ['handles', 'requests', 'resources']) this.registry.removeSingleMetric(`tresor_attest_nodejs_active_${name}_total`);
    }
  }

  /** Whether the audit trail is writable, what it holds in memory, its failed commits, what was served unrecorded. */
  private auditMetrics(sources: MetricSources, registers: Registry[]): void {
    const audit = () => sources.audit?.();
    new Gauge({
      name: 'tresor_attest_audit_writable',
      help: '1 while audit records can be made durable, 0 while writing fails (disk full, I/O error).',
      registers,
      collect() {
        const a = audit();
        if (a) this.set(a.writable ? 1 : 0);
      },
    });
    new Gauge({
      name: 'tresor_attest_audit_held_entries',
      help: 'Audit records, archived receipts and journal entries held in memory until they can be written.',
      registers,
      collect() {
        this.set(audit()?.held ?? 0);
      },
    });
    new Counter({
      name: 'tresor_attest_audit_write_failures_total',
      help: 'Commits of the audit trail that failed, by cause (ERR_AUDIT_DISK_FULL, ERR_AUDIT_WRITE_FAILED).',
      labelNames: ['code'],
      registers,
      collect() {
        const a = audit();
        if (!a) return;
        this.reset();
        for (const [code, n] of Object.entries(a.failures)) this.inc({ code }, n);
      },
    });
    new Counter({
      name: 'tresor_attest_audit_served_unrecorded_total',
      help: 'Exchanges answered before their record could be made durable (audit.disk_full_action: serve).',
      registers,
      collect() {
        const a = audit();
        if (!a) return;
        this.reset();
        this.inc(a.servedUnrecorded);
      },
    });
  }

  /** The audit trail's export to an OpenTelemetry collector: how far behind it is, what it sent, failed and lost. */
  private otlpMetrics(sources: MetricSources, registers: Registry[]): void {
    new Gauge({
      name: 'tresor_attest_otlp_lag_records',
      help: 'Audit records written and not yet accepted by the OTLP collector (the backlog, kept in the audit files).',
      registers,
      collect() {
        const o = sources.otlp?.();
        if (o) this.set(o.lag);
      },
    });
    const counter = (name: string, help: string, pick: (o: { exported: number; failures: number; dropped: number }) => number) =>
      new Counter({
        name,
        help,
        registers,
        collect() {
          const o = sources.otlp?.();
          if (!o) return;
          this.reset();
          this.inc(pick(o));
        },
      });
    counter('tresor_attest_otlp_exported_records_total', 'Audit records accepted by the OTLP collector (a record sent again after a restart counts again).', (o) => o.exported);
    counter('tresor_attest_otlp_export_failures_total', 'OTLP export requests that failed (the batch stays in the audit files and is retried).', (o) => o.failures);
    counter('tresor_attest_otlp_dropped_records_total', 'Audit records never exported: pruned by audit retention (or cut off) before the exporter reached them.', (o) => o.dropped);
  }

  /** The pipeline's `onJournaled`. */
  journaled(upstream: string, seconds: number): void {
    this.journal.observe(this.journal.series(upstream, { upstream }), seconds);
  }

  observeRequest(o: RequestObservation): void {
    const route = routeLabel(o.path);
    const cls = statusClass(o.status);
    const method = methodLabel(o.method);
    const { upstream } = o;
    const key = `${upstream}\n${route}\n${method}\n${cls}`;
    let t = this.requestTallies.get(key);
    if (!t) {
      const duration = this.duration.series(`${upstream}\n${route}\n${cls}`, { upstream, route, status_class: cls });
      this.requestTallies.set(key, (t = { labels: { upstream, route, method, status_class: cls }, n: 0, duration }));
    }
    t.n++;
    this.duration.observe(t.duration, o.seconds);
    const bytes = bytesTallies(this.byteTallies, upstream);
    bytes.in.n += o.requestBytes;
    bytes.out.n += o.responseBytes;
    if (o.error) this.errors.inc({ upstream: o.upstream, code: o.error === 'client_closed' ? 'client_closed' : codeLabel(o.error) });
  }

  attestation(e: AttestationEvent): void {
    this.attestations.inc({ upstream: e.upstream, result: e.result, code: codeLabel(e.code), reason: e.reason });
  }

  jwksFetch(upstream: string, result: FetchResult): void {
    this.jwks.inc({ upstream, result });
  }

  bundleFetch(upstream: string, result: FetchResult): void {
    this.bundles.inc({ upstream, result });
  }

  localAuthFailure(upstream: string): void {
    this.localAuth.inc({ upstream });
  }

  /** `reason` is one of a fixed few (`host`, `origin`, `path`). */
  requestRefused(upstream: string, reason: 'host' | 'origin' | 'path'): void {
    this.refused.inc({ upstream, reason });
  }

  /** `family` is one of VERDICT_HEADER_FAMILIES (a fixed list), never the router's header name. */
  verdictHeaderDropped(upstream: string, family: string): void {
    this.verdictHeaders.inc({ upstream, family });
  }

  async exposition(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
