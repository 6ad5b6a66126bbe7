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
import type { DaemonHooks } from './hooks.js';
import { Upstream } from './upstream.js';
import { AttestationManager } from '../attestation/manager.js';
import { createTresorAttester, type TresorAttester } from '../attestation/tresor.js';
import { aciTeeVerifier, createAciAttester, type AciAttester } from '../attestation/aci.js';
import { createPinaivuAttester, pinaivuNitroRoots, type PinaivuAttester } from '../attestation/pinaivu.js';
import { createNearAttester, type NearAttester } from '../attestation/near.js';
import { tdxRoots } from '../attestation/tdx.js';
import type { AttestationEvent, AttestOverSocket } from '../attestation/manager.js';
import { DaemonMetrics } from '../metrics/metrics.js';
import { routeLabel } from '../metrics/routes.js';
import { RecentErrors } from './recent-errors.js';
import type { ReceiptPipeline } from '../receipts/pipeline.js';
import { FINAL_VERDICTS } from '../receipts/record.js';
import { openReceiptPipeline } from './receipts.js';
import { sendJson, sendReadiness, serveLocalRead, type LocalState } from './local-endpoints.js';
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
    readiness(upstream) {
      const m = managers.get(upstream)?.readiness();
      if (m && !m.ready) return m;
      return extra.readiness?.(upstream) ?? m ?? { ready: true };
    },
    responseHeaders(upstream) {
      return { ...managers.get(upstream)?.responseHeaders(), ...extra.responseHeaders?.(upstream) };
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

const UPSTREAM_PATH = /^\/upstreams\/([^/?#]+)(\/.*)$/;

/** Start the daemon; refuses (DirLockedError, exit 2) when another daemon holds the state directory. */
export async function startDaemon(config: ResolvedConfig, deps: DaemonDeps): Promise<RunningDaemon> {
  const { logger } = deps;
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
  const attesters = new Map<string, TresorAttester>();
  const aciAttesters = new Map<string, AciAttester>();
  const pinaivuAttesters = new Map<string, PinaivuAttester>();
  const nearAttesters = new Map<string, NearAttester>();
  let pipeline: ReceiptPipeline | undefined;
  let exporter: AuditExporter | undefined;
  const extra = deps.hooks ?? {};
  const hooks = withAttestation(managers, {
    ...extra,
    onExchange: (info) => pipeline?.observe(info) ?? extra.onExchange?.(info),
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
  const observer: Pick<DaemonMetrics, 'observeRequest'> = {
    observeRequest(o) {
      metrics.observeRequest(o);
      if (o.error && o.error !== 'client_closed') recentErrors.add({ at: clock().toISOString(), upstream: o.upstream, kind: 'request', code: o.error, where: routeLabel(o.path), status: o.status });
    },
  };
  for (const u of config.upstreams) {
    const upstream = upstreams.get(u.name) as Upstream;
    if (u.attestation.mode === 'off') {
      managers.set(u.name, new AttestationManager({ upstream: u.name, mode: 'off', attest: () => Promise.reject(new Error('attestation is off')), clock, logger: logger.child({ upstream: u.name }), refreshAheadMs: 0 }));
      continue;
    }
    let attest: AttestOverSocket;
    if (u.profile === 'aci') {
      const aci = createAciAttester(u, { clock, teeVerifier: aciTeeVerifier(u) });
      aciAttesters.set(u.name, aci);
      attest = aci.attest;
    } else if (u.profile === 'pinaivu') {
      const p = createPinaivuAttester(u, { clock, roots: pinaivuNitroRoots(u) });
      pinaivuAttesters.set(u.name, p);
      attest = p.attest;
    } else if (u.profile === 'near') {
      const n = createNearAttester(u, { clock, roots: tdxRoots(u) });
      nearAttesters.set(u.name, n);
      attest = n.attest;
    } else {
      const attester = await createTresorAttester(u, {
        clock,
        stateDir: config.state_dir,
        caPem: upstream.caPem,
        ...(deps.env ? { env: deps.env } : {}),
        onBundleFetch: (result) => metrics.bundleFetch(u.name, result),
      });
      attesters.set(u.name, attester);
      attest = attester.attest;
    }
    managers.set(
      u.name,
      new AttestationManager({
        upstream: u.name,
        mode: u.attestation.mode,
        attest,
        openSocket: () => upstream.openSocket(),
        clock,
        logger: logger.child({ upstream: u.name }),
        refreshAheadMs: u.attestation.refresh_ahead_seconds * 1000,
        onRevoke: () => void upstream.resetConnections(),
        onEvent,
      }),
    );
  }
  pipeline = await openReceiptPipeline(config, { upstreams, managers, attesters, aciAttesters, pinaivuAttesters, nearAttesters, clock, logger, metrics });
  exporter = await startOtlpExport(config, pipeline, { env: deps.env ?? process.env, clock, logger });
  // Attest at start-up so /readyz turns ready before the first request (in the background).
  for (const m of managers.values()) void m.start();
  const startedAt = Date.now();
  let shuttingDown = false;
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
    shuttingDown: () => shuttingDown,
  };

  const handler = (defaultUpstream: Upstream) => (req: IncomingMessage, res: ServerResponse) => {
    const requestId = requestIdFrom(req.headers['x-request-id']);
    res.setHeader('x-request-id', requestId);
    const url = req.url ?? '/';
    const path = url.split('?')[0] ?? '/';
    const read = req.method === 'GET' || req.method === 'HEAD';
    // Liveness and readiness stay open (probes); everything else needs the listener's token, if it has one.
    if (read && path === '/healthz') return sendJson(res, 200, { status: 'ok' });
    if (read && path === '/readyz') return sendReadiness(res, local, defaultUpstream.name);
    let upstream = defaultUpstream;
    let forwardPath = url;
    const m = UPSTREAM_PATH.exec(url);
    const named = m ? upstreams.get(decodeURIComponent(m[1] as string)) : undefined;
    if (m && named) {
      upstream = named;
      forwardPath = m[2] as string;
    }
    const toV1 = forwardPath === '/v1' || forwardPath.startsWith('/v1/') || forwardPath.startsWith('/v1?');
    const token = tokens.get(defaultUpstream.name);
    // On /v1 the app's Authorization carries the token only when the daemon injects the real key.
    if (token && !token.allows(req.headers, { local: !toV1, authorizationCarriesToken: !toV1 || upstream.authorization !== undefined })) {
      req.resume();
      metrics.localAuthFailure(defaultUpstream.name);
      logger.warn({ reqId: requestId, upstream: defaultUpstream.name, method: req.method, path: toV1 ? forwardPath.split('?')[0] : path, event: 'local_auth.refused' }, 'request without the local token refused');
      return sendError(res, new LocalAuthError(), { 'www-authenticate': toV1 ? 'Bearer realm="tresor-attest"' : 'Basic realm="tresor-attest", charset="UTF-8"' });
    }
    if (read && serveLocalRead(req, res, local, path, url)) return;
    if (m && !named) {
      req.resume();
      return sendError(res, new TresorError('usage', 'ERR_UNKNOWN_UPSTREAM', `no upstream named ${JSON.stringify(m[1])} is configured`));
    }
    if (!toV1) {
      req.resume();
      return sendError(res, new TresorError('usage', 'ERR_NOT_FOUND', `${path} is not served here: the OpenAI API is under /v1`));
    }
    if (shuttingDown) {
      req.resume();
      return sendError(res, new TresorError('usage', 'ERR_SHUTTING_DOWN', 'tresor-attest is shutting down'), { connection: 'close' });
    }
    const refused = pipeline?.refusal(upstream.name, req.method ?? '', forwardPath);
    if (refused) {
      req.resume();
      logger.warn({ reqId: requestId, upstream: upstream.name, code: refused.code, event: 'audit.refused' }, 'exchange refused: its audit record cannot be made durable');
      return sendError(res, refused, { 'retry-after': '5' });
    }
    forward(req, res, { upstream, hooks, logger, accessLog, requestId, path: forwardPath, shuttingDown: () => shuttingDown, metrics: observer }).catch((e: unknown) => {
      logger.error({ reqId: requestId, err: { message: (e as Error).message } }, 'unexpected error while forwarding');
      sendError(res, e);
    });
  };

  for (const u of upstreams.values()) {
    const server = http.createServer({ keepAliveTimeout: 65_000, requestTimeout: 0, headersTimeout: 60_000, noDelay: true }, handler(u));
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
