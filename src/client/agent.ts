import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { Dispatcher } from 'undici';
import type { AttestationManager } from '../attestation/manager.js';
import { createUpstreamAttestation, emptyAttesterRegistry, type PinEvent } from '../attestation/profile.js';
import type { ResolvedConfig } from '../config/types.js';
import { toAttestationError } from '../errors/attestation.js';
import { UpstreamError } from '../errors/index.js';
import { openReceiptPipeline } from '../proxy/receipts.js';
import { Upstream } from '../proxy/upstream.js';
import type { ReceiptPipeline } from '../receipts/pipeline.js';
import type { VerdictSummary } from '../receipts/verdicts.js';
import { LIBRARY_UPSTREAM, toConfig, type AttestedOptions } from './options.js';
import { observeExchange, REQUEST_ID_HEADER, type ExchangeEnd } from './exchange.js';
import { OldestFirst } from '../util/oldest-first.js';

/** What the agent has once its trust material is loaded. */
interface Running {
  config: ResolvedConfig;
  upstream: Upstream;
  manager: AttestationManager;
  pipeline: ReceiptPipeline | undefined;
  /** A private state dir created because none was given (removed on close). */
  scratch: string | undefined;
  /** The upstream pool's dispatch, with the receipt observer composed in when receipts are on. */
  dispatch: Dispatcher['dispatch'];
}

/**
 * A failed attestation opens the circuit at once, for 5 s (doubling per further failure, at most
 * 60 s): an SDK's retries of the failed request (openai: 2 within about 1.5 s) get the same typed
 * error without a new connection being attested. The daemon waits for 3 failures (its clients
 * do not retry on their own).
 */
const LIBRARY_CIRCUIT = { threshold: 1, baseMs: 5_000, maxMs: 60_000 };

/** The whole request body, when the caller knows it and undici's dispatch options carry it as a stream (fetch). */
const WHOLE_BODY = Symbol('tresor-attest.wholeBody');
type WithWholeBody = Dispatcher.DispatchOptions & { [WHOLE_BODY]?: string | Uint8Array };

/**
 * The agent, for one fetch whose whole body is a string or bytes: undici's fetch hands the
 * dispatcher every body as an async iterable, so the pool could not tell a small JSON body (which
 * may ask for a stream) from an upload. Its dispatches carry the body the fetch was given; what is
 * sent is still fetch's own stream of those bytes.
 */
export class WholeBodyDispatcher extends Dispatcher {
  constructor(
    private readonly agent: AttestedAgent,
    private readonly body: string | Uint8Array,
  ) {
    super();
  }

  override dispatch(opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    return this.agent.dispatch({ ...opts, [WHOLE_BODY]: this.body } as WithWholeBody, handler);
  }
}

/** Agents alive in this process, so that `verdictFor(response)` finds the exchange by its id. */
export const liveAgents = new Set<AttestedAgent>();

/**
 * An undici `Dispatcher` that speaks only to one attested router: every new TLS connection is
 * attested before a byte of the request is written (the daemon's connector pinning and
 * `AttestationManager`: pins refreshed ahead of expiry, lapsing without a refresh, a new key
 * attested once, repeated failures opening a circuit), through HTTPS_PROXY when the environment
 * says so. Requests to any other origin are refused. With receipts on, each completion's receipt
 * is fetched and verified by the daemon's receipt pipeline.
 *
 * @example
 * ```ts
 * import { request, setGlobalDispatcher } from 'undici'
 * import { AttestedAgent } from 'tresor-attest'
 * const agent = new AttestedAgent({ baseURL: 'https://api.tresor.co/v1', releaseRootFile: 'release-root.pub' })
 * const res = await request('https://api.tresor.co/v1/models', { dispatcher: agent, headers: { authorization: `Bearer ${key}` } })
 * // or, for every undici request in the process: setGlobalDispatcher(agent)
 * ```
 */
export class AttestedAgent extends Dispatcher {
  private readonly started: Promise<Running>;
  private running: Running | undefined;
  private closed = false;
  private readonly origin: string;
  private readonly ends = new Map<string, Promise<ExchangeEnd>>();
  private readonly oldestEnds = new OldestFirst(this.ends);

  constructor(private readonly options: AttestedOptions) {
    super();
    this.origin = new URL(options.baseURL).origin;
    this.started = this.start();
    // An options error surfaces at the first request (and at `ready()`); never as an unhandled rejection.
    this.started.catch(() => undefined);
    liveAgents.add(this);
  }

  private async start(): Promise<Running> {
    const o = this.options;
    const scratch = o.stateDir === undefined ? await mkdtemp(join(tmpdir(), 'tresor-attest-lib-')) : undefined;
    const stateDir = o.stateDir ?? (scratch as string);
    try {
      const config = toConfig(o, stateDir);
      await mkdir(config.state_dir, { recursive: true, mode: 0o700 });
      const u = config.upstreams[0] as ResolvedConfig['upstreams'][number];
      const clock = o.clock ?? (() => new Date());
      const logger = o.logger ?? pino({ level: 'silent' });
      const env = o.env ?? process.env;
      let manager: AttestationManager | undefined;
      // The connector hook: the manager decides; its refusal reaches the app as the named typed error.
      // The per-request gate: a pooled connection whose pin lapsed is closed before a request is written on it.
      const upstream = new Upstream(
        u,
        {
          verifyConnection: (_name, socket) => (manager as AttestationManager).verifyConnection(socket).catch((e: unknown) => Promise.reject(toAttestationError(e))),
          connectionUsable: (_name, socket) => (manager as AttestationManager).usable(socket),
        },
        env,
      );
      const registry = emptyAttesterRegistry();
      // Pins are recorded by the receipt pipeline (opened below, before the first connection).
      let pipeline: Awaited<ReturnType<typeof openReceiptPipeline>>;
      const onPin = (pin: PinEvent) => pipeline?.recordPin(pin);
      manager = await createUpstreamAttestation(u, upstream, { clock, stateDir: config.state_dir, logger, env, circuit: LIBRARY_CIRCUIT, onPin }, registry);
      const onVerdict = o.onVerdict;
      pipeline = await openReceiptPipeline(config, {
        upstreams: new Map([[u.name, upstream]]),
        managers: new Map([[u.name, manager]]),
        ...registry,
        clock,
        logger,
        inMemory: o.stateDir === undefined,
        ...(onVerdict ? { onVerdict: (v: VerdictSummary) => void Promise.resolve().then(() => onVerdict(v)).catch(() => undefined) } : {}),
      });
      // As in the daemon, the pool by the body (pool.http2): a stream over HTTP/2, an upload not held
      // behind the streams of a shared session. fetch hands every body over as a stream: attestedFetch
      // notes the whole body it was given (WHOLE_BODY), so that routing sees what the daemon sees.
      const pool = { dispatch: (d: Dispatcher.DispatchOptions, h: Dispatcher.DispatchHandler) => upstream.dispatcherFor((d as WithWholeBody)[WHOLE_BODY] ?? d.body).dispatch(d, h) };
      // compose() hands the interceptor a handler in undici 7's controller form, whatever the caller passed.
      const observed = (next: Dispatcher['dispatch']): Dispatcher['dispatch'] => (d, h) => {
        const x = observeExchange({ pipeline, upstream, logger }, d, h, (id, end) => this.track(id, end));
        return next(x?.opts ?? d, x?.handler ?? h);
      };
      const dispatch = pipeline ? (Dispatcher.prototype.compose.call(pool as unknown as Dispatcher, observed) as Dispatcher).dispatch : pool.dispatch;
      return { config, upstream, manager, pipeline, scratch, dispatch };
    } catch (e) {
      if (scratch) await rm(scratch, { recursive: true, force: true });
      throw e;
    }
  }

  /**
   * Resolves once the router is attested over a fresh connection (rejects with the typed
   * `AttestationError` otherwise): optional, requests attest on their own.
   */
  async ready(): Promise<void> {
    const r = await this.started;
    const socket = await r.upstream.openSocket();
    try {
      await r.manager.verifyConnection(socket).catch((e: unknown) => Promise.reject(toAttestationError(e)));
    } finally {
      socket.destroy();
    }
  }

  /** What is pinned now (kind, measurement, tag, TLS key, expiry), as the daemon's /status shows it. */
  async status(): Promise<Record<string, unknown>> {
    return (await this.started).manager.status();
  }

  override dispatch(opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    const origin = opts.origin === undefined ? undefined : new URL(String(opts.origin)).origin;
    const fail = (e: Error) => void Promise.resolve().then(() => (handler.onResponseError ? handler.onResponseError(noController, e) : handler.onError?.(e)));
    if (this.closed) {
      fail(new UpstreamError('ERR_AGENT_CLOSED', 'this AttestedAgent is closed'));
      return false;
    }
    if (origin !== this.origin) {
      fail(new UpstreamError('ERR_ORIGIN_NOT_ATTESTED', `this AttestedAgent only speaks to ${this.origin} (attested); refused a request to ${origin ?? 'no origin'}`));
      return false;
    }
    const go = (r: Running) => r.dispatch(opts, handler);
    if (this.running) return go(this.running);
    this.started.then(
      (r) => {
        this.running = r;
        go(r);
      },
      (e: unknown) => fail(e as Error),
    );
    return true;
  }

  private track(id: string, end: Promise<ExchangeEnd>): void {
    this.ends.set(id, end);
    // Bounded: the oldest exchanges are forgotten (their verdicts stay in the pipeline's store).
    this.oldestEnds.trim(10_000);
  }

  /** The verdict of the exchange with this request id, if this agent made it (undefined otherwise). */
  async verdictOf(id: string, timeoutMs: number): Promise<VerdictSummary | undefined> {
    const end = this.ends.get(id);
    if (!end) return undefined;
    const r = await this.started;
    const e = await end;
    if (!e.journaled) {
      return { status: 'done', request_id: id, upstream: LIBRARY_UPSTREAM, verdict: 'none', code: 'ERR_RECEIPT_NOT_EXPECTED', detail: e.reason };
    }
    return (await r.pipeline?.verdicts.wait(id, timeoutMs)) ?? r.pipeline?.verdicts.get(id);
  }

  /** Default wait for a verdict: the receipt fetch deadline plus a margin. */
  async verdictTimeoutMs(): Promise<number> {
    return ((await this.started).config.upstreams[0]?.receipts.deadline_seconds ?? 30) * 1000 + 5_000;
  }

  override async close(): Promise<void> {
    await this.shutdown(false);
  }

  override async destroy(): Promise<void> {
    await this.shutdown(true);
  }

  private async shutdown(force: boolean): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    liveAgents.delete(this);
    const r = await this.started.catch(() => undefined);
    if (!r) return;
    r.manager.stop();
    // Receipt jobs still running stay journaled (with a state dir) and resume with the next agent.
    await r.pipeline?.close(force ? 0 : 2_000);
    await (force ? r.upstream.destroy() : r.upstream.close());
    if (r.scratch) await rm(r.scratch, { recursive: true, force: true });
  }
}

/** A controller for errors raised before undici made one (nothing to abort or pause yet). */
const noController: Dispatcher.DispatchController = {
  abort() {},
  pause() {},
  resume() {},
  get aborted() {
    return false;
  },
  get paused() {
    return false;
  },
  get reason() {
    return null;
  },
};

export { REQUEST_ID_HEADER };
