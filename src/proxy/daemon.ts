import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdir } from 'node:fs/promises';
import { isAbsolute, relative } from 'node:path';
import { lockDir } from '../util/dir-lock.js';
import type { Logger } from 'pino';
import type { ResolvedConfig } from '../config/types.js';
import { TresorError } from '../errors/index.js';
import { accessLogger, requestIdFrom } from '../log/logger.js';
import { sendError } from './errors-to-http.js';
import { forward } from './forward.js';
import { LocalAuthError, readLocalToken, type LocalToken } from './local-auth.js';
import type { DaemonHooks, ExchangeInfo } from '../transport/hooks.js';
import { Upstream } from './upstream.js';
import { AttestationManager } from '../attestation/manager.js';
import { createUpstreamAttestation, emptyAttesterRegistry, type PinEvent } from '../attestation/profile.js';
import type { AttestationEvent } from '../attestation/manager.js';
import { DaemonMetrics } from '../metrics/metrics.js';
import { routeLabel } from '../metrics/routes.js';
import { RecentErrors } from './recent-errors.js';
import type { ReceiptPipeline } from '../receipts/pipeline.js';
import { FINAL_VERDICTS } from '../receipts/record.js';
import { openReceiptPipeline } from './receipts.js';
import { preflight } from './preflight.js';
import { sendJson, sendReadiness, serveLocalRead, type LocalState } from './local-endpoints.js';
import { admit, corsHeaders, isPreflight, listenerDoor, sendPreflight, type ListenerDoor } from './admission.js';
import type { Clock } from '../types.js';
import type { AuditExporter } from '../otlp/exporter.js';
import { resolveOtlpSettings } from '../otlp/settings.js';

export interface RunningDaemon {
  readonly listeners: readonly { upstream: string; url: string }[];
  readonly upstreams: ReadonlyMap<string, Upstream>;
  /** This daemon's Prometheus registry (served at GET /metrics). */
  readonly metrics: DaemonMetrics;
  /** Stop accepting, let in-flight requests finish up to the grace period, then close. */
  close(graceMs?: number): Promise<void>;
}

export interface DaemonDeps {
  logger: Logger;
  hooks?: DaemonHooks;
  env?: Record<string, string | undefined>;
  clock?: Clock;
  /** Export Node.js process metrics (heap, event loop, GC) on /metrics; default true. */
  processMetrics?: boolean;
}

/**
 * Attestation plugged into the daemon's hooks: every new upstream TLS socket is checked by that
 * upstream's pinning manager before the pool may use it; readiness, response headers and
 * /status come from it too. Extra hooks (tests, later capabilities) run after.
 */
function withAttestation(managers: Map<string, AttestationManager>, extra: DaemonHooks): DaemonHooks {
  return {
    ...extra,
    async verifyConnection(upstream, socket) {
      await managers.get(upstream)?.verifyConnection(socket);
      await extra.verifyConnection?.(upstream, socket);
    },
    connectionUsable(upstream, socket) {
      return (managers.get(upstream)?.usable(socket) ?? true) && (extra.connectionUsable?.(upstream, socket) ?? true);
    },
    readiness(upstream) {
      const m = managers.get(upstream)?.readiness();
      if (m && !m.ready) return m;
      return extra.readiness?.(upstream) ?? m ?? { ready: true };
    },
    responseHeaders(upstream) {
      const m = managers.get(upstream)?.responseHeaders();
      return extra.responseHeaders ? { ...m, ...extra.responseHeaders(upstream) } : (m ?? {});
    },
    status(upstream) {
      const m = managers.get(upstream);
      return { ...(m ? { attestation: m.status() } : {}), ...extra.status?.(upstream) };
    },
  };
}

function receiptStatus(p: ReceiptPipeline, upstream: string): Record<string, number> {
  const mine = p.verdictsByUpstream.get(upstream);
  return {
    ...Object.fromEntries(FINAL_VERDICTS.map((v) => [v, mine?.[v] ?? 0])),
    pending: p.pending,
    journaled: p.counters.journaled,
    dropped: p.counters.dropped,
  };
}

/** Start the daemon; refuses (DirLockedError, exit 2) when another daemon holds the state directory. */
export async function startDaemon(config: ResolvedConfig, deps: DaemonDeps): Promise<RunningDaemon> {
  const { logger } = deps;
  // The same checks as `config check`: a file serve cannot read stops it here, with the same code.
  for (const warning of await preflight(config, deps.env ?? process.env)) logger.warn({ event: 'config.warning' }, warning);
  await mkdir(config.state_dir, { recursive: true, mode: 0o700 });
  // One writer per state directory (and per audit directory, when it lives elsewhere).
  const locks = [await lockDir(config.state_dir, logger)];
  try {
    if (relative(config.state_dir, config.audit.dir).startsWith('..') || isAbsolute(relative(config.state_dir, config.audit.dir))) {
      await mkdir(config.audit.dir, { recursive: true, mode: 0o700 });
      locks.push(await lockDir(config.audit.dir, logger));
    }
    return await runDaemon(config, deps, locks);
  } catch (e) {
    for (const l of locks) await l.release();
    throw e;
  }
}

async function runDaemon(config: ResolvedConfig, deps: DaemonDeps, locks: { release(): Promise<void> }[]): Promise<RunningDaemon> {
  const { logger } = deps;
  const accessLog = accessLogger(logger);
  const clock = deps.clock ?? (() => new Date());
  const managers = new Map<string, AttestationManager>();
  let pipeline: ReceiptPipeline | undefined;
  let exporter: AuditExporter | undefined;
  const extra = deps.hooks ?? {};
  // Without receipts anywhere nothing observes an exchange (but extra hooks): forward() then skips describing each one.
  const receiptsOn = config.upstreams.some((u) => u.receipts.mode !== 'off');
  const hooks = withAttestation(managers, {
    ...extra,
    ...(receiptsOn ? { onExchange: (info: ExchangeInfo) => pipeline?.observe(info) ?? extra.onExchange?.(info) } : {}),
    // Verdict counts are this upstream's; `pending`, `journaled` and `dropped` are the shared journal's.
    status: (name) => ({ ...(pipeline ? { receipts: receiptStatus(pipeline, name) } : {}), ...extra.status?.(name) }),
  });
  const upstreams = new Map<string, Upstream>();
  for (const u of config.upstreams) upstreams.set(u.name, new Upstream(u, hooks, deps.env));
  const tokens = new Map<string, LocalToken>();
  for (const u of config.upstreams) {
    const t = readLocalToken(u);
    if (t) tokens.set(u.name, t);
  }
  const metrics = new DaemonMetrics(
    {
      upstreams: () =>
        [...upstreams.values()].map((u) => ({
          name: u.name,
          inFlight: u.counters.inFlight,
          ready: hooks.readiness?.(u.name).ready ?? true,
          attestationExpiresAt: managers.get(u.name)?.current()?.expiresAt,
        })),
      receipts: () => (pipeline ? { counters: pipeline.counters, pending: pipeline.pending, byUpstream: pipeline.verdictsByUpstream } : undefined),
      otlp: () => (exporter ? { ...exporter.stats, lag: exporter.lag } : undefined),
      audit: () => (pipeline ? { writable: !pipeline.health.failure, held: pipeline.held, failures: pipeline.health.failures, servedUnrecorded: pipeline.health.servedUnrecorded } : undefined),
    },
    { processMetrics: deps.processMetrics !== false },
  );
  const recentErrors = new RecentErrors();
  const onEvent = (e: AttestationEvent) => {
    metrics.attestation(e);
    if (e.result === 'failed') recentErrors.add({ at: clock().toISOString(), upstream: e.upstream, kind: 'attestation', code: e.code ?? 'ERR_UNKNOWN', where: e.reason });
  };
  const forgedLogged = new Set<string>();
  const observer: Pick<DaemonMetrics, 'observeRequest' | 'verdictHeaderDropped'> = {
    observeRequest(o) {
      metrics.observeRequest(o);
      if (o.error && o.error !== 'client_closed') recentErrors.add({ at: clock().toISOString(), upstream: o.upstream, kind: 'request', code: o.error, where: routeLabel(o.path), status: o.status });
    },
    verdictHeaderDropped(upstream, family) {
      metrics.verdictHeaderDropped(upstream, family);
      // Logged once per upstream and family (the metric counts them all): a router sending these is misconfigured or hostile.
      if (forgedLogged.has(`${upstream} ${family}`)) return;
      forgedLogged.add(`${upstream} ${family}`);
      logger.warn({ upstream, family, event: 'router_verdict_header.dropped' }, "the router sent one of the daemon's verdict headers: dropped (only the daemon reports what it verified)");
    },
  };
  const registry = emptyAttesterRegistry();
  for (const u of config.upstreams) {
    const upstream = upstreams.get(u.name) as Upstream;
    // Pins are recorded by the receipt pipeline (opened below, before any attestation starts).
    const onPin = (pin: PinEvent) => pipeline?.recordPin(pin);
    const attestationDeps = { clock, stateDir: config.state_dir, logger, env: deps.env, onEvent, onPin, onBundleFetch: (result: 'ok' | 'error') => metrics.bundleFetch(u.name, result) };
    managers.set(u.name, await createUpstreamAttestation(u, upstream, attestationDeps, registry));
  }
  pipeline = await openReceiptPipeline(config, { upstreams, managers, ...registry, clock, logger, metrics });
  exporter = await startOtlpExport(config, pipeline, { env: deps.env ?? process.env, clock, logger });
  // Attest at start-up so /readyz turns ready before the first request (in the background).
  for (const m of managers.values()) void m.start();
  const startedAt = Date.now();
  let shuttingDown = false;
  const isShuttingDown = () => shuttingDown;
  const servers: http.Server[] = [];
  const listeners: { upstream: string; url: string }[] = [];

  const local: LocalState = {
    upstreams,
    listeners,
    tokenRequired: (name) => tokens.has(name),
    hooks,
    metrics,
    pipeline: () => pipeline,
    recentErrors,
    auditDir: config.audit.dir,
    clock,
    startedAt,
    shuttingDown: isShuttingDown,
  };

  const handler = (listener: Upstream, door: ListenerDoor) => (req: IncomingMessage, res: ServerResponse) => {
    const requestId = requestIdFrom(req.headers['x-request-id']);
    // X-Request-Id goes on every answer, but through setHeader only where the daemon answers itself
    // (tag): a forwarded answer carries it in its own header object, so that writeHead takes Node's
    // one-pass path instead of merging that object into headers set before (a setHeader per field).
    const url = req.url ?? '/';
    const read = req.method === 'GET' || req.method === 'HEAD';
    // Liveness and readiness answer any Host, Origin and token: probes (a kubelet's httpGet sends
    // Host = pod IP:port, a load balancer its own name); they forward nothing and show no secret.
    const q = url.indexOf('?');
    const rawPath = q < 0 ? url : url.slice(0, q);
    if (read && rawPath === '/healthz') return sendJson(tag(res, requestId), 200, { status: 'ok' });
    if (read && rawPath === '/readyz') return sendReadiness(tag(res, requestId), local, listener.name);
    // Admission (admission.ts): Host, path, Origin, then every token on the way; nothing is forwarded before.
    const a = admit(req, door, listener, upstreams);
    if ('reason' in a) {
      req.resume();
      metrics.requestRefused(listener.name, a.reason);
      logger.warn({ reqId: requestId, upstream: listener.name, method: req.method, event: `admission.${a.reason}`, code: a.error.code, ...a.detail }, 'request refused before forwarding');
      return sendError(tag(res, requestId), a.error);
    }
    const { target, upstream, toV1 } = a;
    if (a.corsOrigin !== undefined) {
      tag(res, requestId);
      if (isPreflight(req)) return sendPreflight(req, res, a.corsOrigin);
      for (const [k, v] of Object.entries(corsHeaders(a.corsOrigin))) res.setHeader(k, v);
    }
    // Every listener keeps its own door: the token of the listener the request arrived on, and the
    // token of the upstream it reaches (through /upstreams/<name>/), if each has one.
    // On /v1 the app's Authorization carries a token only when the daemon injects the real key.
    if (tokens.size > 0) for (const u of new Set([listener, upstream])) {
      const token = tokens.get(u.name);
      if (token && !token.allows(req.headers, { local: !toV1, authorizationCarriesToken: !toV1 || upstream.authorization !== undefined })) {
        req.resume();
        metrics.localAuthFailure(listener.name);
        logger.warn({ reqId: requestId, upstream: listener.name, door: u.name, method: req.method, path: target.path, event: 'local_auth.refused' }, 'request without the local token refused');
        return sendError(tag(res, requestId), new LocalAuthError(), { 'www-authenticate': toV1 ? 'Bearer realm="tresor-attest"' : 'Basic realm="tresor-attest", charset="UTF-8"' });
      }
    }
    // (The daemon's own read endpoints all lie outside /v1.)
    if (read && !toV1 && serveLocalRead(req, tag(res, requestId), local, target.path, target.path + target.query)) return;
    if (a.unknownUpstream !== undefined) {
      req.resume();
      return sendError(tag(res, requestId), new TresorError('usage', 'ERR_UNKNOWN_UPSTREAM', `no upstream named ${JSON.stringify(a.unknownUpstream)} is configured`));
    }
    if (!toV1) {
      req.resume();
      return sendError(tag(res, requestId), new TresorError('usage', 'ERR_NOT_FOUND', `${target.path} is not served here: the OpenAI API is under /v1`));
    }
    if (shuttingDown) {
      req.resume();
      return sendError(tag(res, requestId), new TresorError('usage', 'ERR_SHUTTING_DOWN', 'tresor-attest is shutting down'), { connection: 'close' });
    }
    const refused = pipeline?.refusal(upstream.name, req.method ?? '', a.forwardPath);
    if (refused) {
      req.resume();
      logger.warn({ reqId: requestId, upstream: upstream.name, code: refused.code, event: 'audit.refused' }, 'exchange refused: its audit record cannot be made durable');
      return sendError(tag(res, requestId), refused, { 'retry-after': '5' });
    }
    forward(req, res, { upstream, hooks, logger, accessLog, requestId, path: a.forwardPath + target.query, shuttingDown: isShuttingDown, metrics: observer }).catch((e: unknown) => {
      logger.error({ reqId: requestId, err: { message: (e as Error).message } }, 'unexpected error while forwarding');
      sendError(res, e, { 'x-request-id': requestId });
    });
  };

  for (const u of upstreams.values()) {
    const server = http.createServer({ keepAliveTimeout: 65_000, requestTimeout: 0, headersTimeout: 60_000, noDelay: true }, handler(u, listenerDoor(u.config)));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(u.config.listen.port, u.config.listen.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const addr = server.address() as AddressInfo;
    const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
    listeners.push({ upstream: u.name, url: `http://${host}:${addr.port}` });
    servers.push(server);
    if (!isLoopback(addr.address)) {
      if (tokens.has(u.name)) logger.warn({ upstream: u.name, listen: `${host}:${addr.port}` }, 'listening on a non-loopback address: apps must present the local token');
      else logger.warn({ upstream: u.name, listen: `${host}:${addr.port}` }, 'listening on a non-loopback address WITHOUT a local token (allow_unauthenticated_listen): any host that can reach it can use the upstream key');
    }
    logger.info({ upstream: u.name, listen: `${host}:${addr.port}`, url: u.config.url }, `serving OPENAI_BASE_URL=http://${host}:${addr.port}/v1`);
  }

  const inFlight = () => [...upstreams.values()].reduce((n, u) => n + u.counters.inFlight, 0);

  return {
    listeners,
    upstreams,
    metrics,
    async close(graceMs = config.shutdown_grace_seconds * 1000) {
      if (shuttingDown) return;
      shuttingDown = true;
      logger.info({ inFlight: inFlight(), graceMs }, 'shutting down: no new connections, draining in-flight requests');
      const closed = servers.map((s) => new Promise<void>((r) => s.close(() => r())));
      for (const s of servers) s.closeIdleConnections();
      const deadline = Date.now() + graceMs;
      while (inFlight() > 0 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 25));
        for (const s of servers) s.closeIdleConnections();
      }
      if (inFlight() > 0) logger.warn({ inFlight: inFlight() }, 'grace period over: closing remaining connections');
      for (const s of servers) s.closeAllConnections();
      await Promise.all(closed);
      for (const m of managers.values()) m.stop();
      // Receipt jobs still running stay journaled and resume at the next start.
      await pipeline?.close(Math.max(0, deadline - Date.now()));
      // One last export of what the log holds (bounded); the rest goes at the next start, from the cursor.
      await exporter?.stop(Math.min(OTLP_STOP_MS, Math.max(0, deadline - Date.now())));
      await Promise.all([...upstreams.values()].map((u) => (inFlight() > 0 ? u.destroy() : u.close())));
      for (const l of locks) await l.release();
      logger.info('stopped');
    },
  };
}

/** The answer's X-Request-Id, set before the daemon answers a request itself (see the handler). */
function tag(res: ServerResponse, requestId: string): ServerResponse {
  res.setHeader('x-request-id', requestId);
  return res;
}

/** Longest wait at shutdown for a last export. */
const OTLP_STOP_MS = 2000;

/** The audit trail's OTLP exporter, when an endpoint is configured (config or OTEL_* variables) and there is an audit log. */
async function startOtlpExport(config: ResolvedConfig, pipeline: ReceiptPipeline | undefined, o: { env: Record<string, string | undefined>; clock: Clock; logger: Logger }): Promise<AuditExporter | undefined> {
  const settings = resolveOtlpSettings(config.otlp, o.env);
  if (!settings) return undefined;
  if (!pipeline) {
    o.logger.warn({ event: 'otlp.no_audit_log' }, 'an OTLP endpoint is configured but receipts are off on every upstream: there is no audit trail to export');
    return undefined;
  }
  const audit = pipeline.audit;
  // Loaded only when configured: the OpenTelemetry SDK adds a noticeable share to every start.
  const { AuditExporter } = await import('../otlp/exporter.js');
  return AuditExporter.start({ dir: config.audit.dir, settings, clock: o.clock, headSeq: () => audit.head.seq, logger: o.logger });
}

function isLoopback(address: string): boolean {
  return address === '::1' || address.startsWith('127.') || address === '::ffff:127.0.0.1';
}
