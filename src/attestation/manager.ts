import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { UpstreamError, VerificationError, toTresorError, type TresorError } from '../errors/index.js';
import { peerCertificate, spkiSha256 } from '../x509/certificate.js';
import type { Clock } from '../types.js';
import { CircuitBreaker } from './circuit.js';
import { attestationHeaderValue, type AttestedIdentity } from './identity.js';
import { PinCache } from './pins.js';

export type AttestationMode = 'enforce' | 'warn' | 'off';

/**
 * Obtains and verifies evidence over `socket` (the connection about to be trusted). `refresh` is
 * set when a pin is being renewed: the attester then re-reads its trust material (a new trust
 * bundle may have revoked the pinned release) instead of using a cached copy.
 */
export type AttestOverSocket = (ctx: { socket: TLSSocket; spkiSha256: string; refresh?: boolean }) => Promise<AttestedIdentity>;

/** Why a pin stopped being trusted, and when: kept (bounded) for `/status` and audit records of exchanges that were in flight. */
export interface PinLapse {
  spkiSha256: string;
  at: string;
  code: string;
  message: string;
}

export interface AttestationEvent {
  upstream: string;
  result: 'verified' | 'failed';
  code?: string;
  reason: 'connection' | 'refresh' | 'startup';
  spkiSha256?: string;
}

export interface AttestationManagerOptions {
  upstream: string;
  mode: AttestationMode;
  attest: AttestOverSocket;
  /** Opens a fresh TLS socket to the upstream that is NOT yet handed to the pool (start-up and refresh-ahead). */
  openSocket?: () => Promise<TLSSocket>;
  clock: Clock;
  logger: Logger;
  /** Refresh a pin this long before it expires, so requests never wait for attestation. */
  refreshAheadMs: number;
  circuit?: { threshold: number; baseMs: number; maxMs: number };
  onEvent?: (e: AttestationEvent) => void;
  /** A pin lapsed (expired, failed or yielded another key on refresh): close idle pooled connections to that key. */
  onRevoke?: (spkiSha256: string) => void;
  /** The operator's test-root files (`attestation.test_roots_file`), if any: shown on /status and in headers. */
  testRootsFiles?: readonly string[];
  /**
   * A verification succeeded: record the pin (its `attestation` audit record, its evidence archived).
   * Returns the evidence id the pin keeps and its receipt records name (undefined: not archived).
   */
  onPin?: (identity: AttestedIdentity, reason: AttestationEvent['reason']) => string | undefined;
}

/**
 * Connection pinning for one upstream. Every new TLS connection is checked before the pool may
 * use it: its leaf SPKI must be bound to a fresh verified attestation, obtained over that very
 * connection unless the same key is already pinned. Verified pins are refreshed ahead of expiry;
 * a new key (rotation, another pod) triggers one attestation; repeated failures open a circuit.
 *
 * A pin lapses at once when it expires (evidence max age or the bundle's `valid_until`), when its
 * refresh fails (including a new bundle that no longer allows the pinned release), or when the
 * refresh finds the router proving another key. From then on `usable()` refuses every request on
 * connections to that key, and idle ones are closed (`onRevoke`). While the most recent attestation
 * failed, or no pin is fresh, the upstream is not ready; a background retry (with the circuit's
 * backoff) makes it ready again as soon as a connection verifies.
 */
export class AttestationManager {
  private readonly pins: PinCache;
  private readonly circuit: CircuitBreaker;
  private readonly inflight = new Map<string, Promise<AttestedIdentity>>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private lastError: { code: string; message: string; at: string } | undefined;
  /** Which key each verified socket presented (for the per-request gate). */
  private readonly socketKeys = new WeakMap<TLSSocket, string>();
  private readonly lapses: PinLapse[] = [];
  /** Verifications already recorded (onPin): callers sharing one single-flight attestation record it once. */
  private readonly recordedPins = new WeakMap<AttestedIdentity, string | null>();
  private retries = 0;
  private stopped = false;
  /** `responseHeaders()` as last built, valid for [from, until) while the pins stay at `version`. */
  private headerCache: { version: number; from: number; until: number; headers: Record<string, string> } | undefined;

  constructor(private readonly opts: AttestationManagerOptions) {
    this.pins = new PinCache(opts.clock);
    this.circuit = new CircuitBreaker({ ...(opts.circuit ?? { threshold: 3, baseMs: 1_000, maxMs: 60_000 }), clock: opts.clock });
    if (opts.mode !== 'enforce') {
      opts.logger.warn(
        { upstream: opts.upstream, attestationMode: opts.mode },
        `ATTESTATION IS NOT ENFORCED for upstream "${opts.upstream}" (mode: ${opts.mode}): application bytes may reach an unverified router`,
      );
    }
  }

  get mode(): AttestationMode {
    return this.opts.mode;
  }

  /** Attest once at start-up so /readyz turns ready before the first request. Never throws. */
  async start(): Promise<void> {
    if (this.opts.mode === 'off' || !this.opts.openSocket) return;
    await this.refresh('startup');
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
  }

  /** The connector hook: resolves when `socket` may be handed to the pool, throws otherwise. */
  async verifyConnection(socket: TLSSocket): Promise<void> {
    if (this.opts.mode === 'off') return;
    let spki: string;
    try {
      const cert = peerCertificate(socket);
      if (!cert) throw new UpstreamError('ERR_ATTEST_NO_PEER_CERTIFICATE', 'the upstream presented no TLS certificate');
      spki = spkiSha256(cert);
    } catch (e) {
      return this.fail(toTresorError(e), 'connection');
    }
    if (this.pins.isFresh(spki)) {
      this.socketKeys.set(socket, spki);
      // A connection presenting a freshly pinned key verifies again: readiness recovers.
      if (this.lastError) this.recovered();
      return;
    }
    try {
      this.circuit.check();
    } catch (e) {
      return this.fail(toTresorError(e), 'connection', spki, false);
    }
    try {
      const identity = await this.attestOnce(spki, socket);
      this.accept(identity, 'connection');
      this.socketKeys.set(socket, spki);
    } catch (e) {
      return this.fail(toTresorError(e), 'connection', spki);
    }
  }

  /**
   * The per-request dispatch gate: may a request be written on this pooled socket now? A lookup
   * (the socket's key, that key's pin expiry), never a verification. In enforce mode, a socket
   * whose key has no fresh pin (lapsed, or never verified) is refused.
   */
  usable(socket: TLSSocket): boolean {
    if (this.opts.mode !== 'enforce') return true;
    const spki = this.socketKeys.get(socket);
    return spki !== undefined && this.pins.isFresh(spki);
  }

  /**
   * The identity pinned for this connection's key, fresh or lapsed (a lookup): what an exchange
   * made over it records. Undefined for a socket never verified (or a pin since evicted).
   */
  pinOf(socket: TLSSocket): AttestedIdentity | undefined {
    const spki = this.socketKeys.get(socket);
    return spki === undefined ? undefined : this.pins.known(spki);
  }

  /** Pins that lapsed after `since` (newest last): an exchange in flight then says so in its audit record. */
  lapsesSince(since: Date): PinLapse[] {
    const t = since.getTime();
    return this.lapses.filter((l) => Date.parse(l.at) >= t);
  }

  /** Whether requests may be forwarded now (for /readyz and the dispatch gate). */
  readiness(): { ready: boolean; reason?: string } {
    if (this.opts.mode !== 'enforce') return { ready: true, reason: `attestation ${this.opts.mode}` };
    // The most recent attestation failed (e.g. a man in the middle now answers new connections):
    // not ready, even while an older pin is still fresh, until a connection verifies again.
    if (this.lastError) return { ready: false, reason: `attestation failed: ${this.lastError.code}` };
    if (this.pins.fresh().length > 0) return { ready: true };
    const lapse = this.lapses[this.lapses.length - 1];
    return { ready: false, reason: lapse ? `attestation lapsed: ${lapse.code}` : 'no verified attestation yet' };
  }

  /** The most recently verified fresh identity, if any. */
  current(): AttestedIdentity | undefined {
    const fresh = this.pins.fresh();
    return fresh[fresh.length - 1];
  }

  /** Every identity pinned recently (fresh or lapsed), for matching evidence embedded in receipts. */
  known(): AttestedIdentity[] {
    return this.pins.all();
  }

  /**
   * Headers that tell the app what was verified. Built once per verdict, not per request: the
   * same (frozen) object is returned until the pins change or the current pin's freshness ends
   * (callers copy it, never change it).
   */
  responseHeaders(): Record<string, string> {
    const now = this.opts.clock().getTime();
    const c = this.headerCache;
    if (c && c.version === this.pins.version && now >= c.from && now < c.until) return c.headers;
    const id = this.opts.mode === 'off' ? undefined : this.current();
    const until = id ? (this.pins.freshUntil(id.spkiSha256) ?? now) : Infinity;
    const headers = Object.freeze(this.buildResponseHeaders(id));
    this.headerCache = { version: this.pins.version, from: now, until, headers };
    return headers;
  }

  private buildResponseHeaders(id: AttestedIdentity | undefined): Record<string, string> {
    if (this.opts.mode === 'off') return { 'x-tresor-attestation': 'off' };
    if (!id) return { 'x-tresor-attestation': this.opts.mode === 'warn' ? 'unverified-warn-mode' : 'unverified' };
    const h: Record<string, string> = {
      'x-tresor-attestation': attestationHeaderValue(this.opts.mode === 'warn' ? 'verified-warn-mode' : 'verified', id, this.testRoots),
      'x-tresor-attestation-kind': id.kind,
      'x-tresor-tls-spki-sha256': id.spkiSha256,
    };
    if (id.measurement) h[id.kind === 'nitro' ? 'x-tresor-pcr0' : 'x-tresor-measurement'] = id.measurement;
    if (id.tag) h['x-tresor-workload-tag'] = id.tag;
    return h;
  }

  /** Whether the operator allowed test roots for this upstream. */
  get testRoots(): boolean {
    return (this.opts.testRootsFiles?.length ?? 0) > 0;
  }

  status(): Record<string, unknown> {
    return {
      mode: this.opts.mode,
      ready: this.readiness().ready,
      // Test roots trusted besides the pinned vendor roots (null: vendor roots only).
      testRoots: this.testRoots ? this.opts.testRootsFiles : null,
      identities: this.pins.fresh().map((p) => ({
        kind: p.kind,
        spkiSha256: p.spkiSha256,
        measurement: p.measurement,
        tag: p.tag,
        bundleVersion: p.bundleVersion,
        bundleValidUntil: p.bundleValidUntil,
        verifiedAt: p.verifiedAt,
        expiresAt: p.expiresAt,
        freshness: p.freshness,
        channel: p.channel,
        // What the evidence said beyond the pin (TDX RTMRs and compose hash, ACI keyset, Nitro PCRs, NEAR signers): non-secret.
        summary: p.summary,
      })),
      lastError: this.lastError,
      // The most recent pin lapses (expiry, failed or changed refresh), newest last.
      lapses: this.lapses.slice(-5),
      circuit: this.circuit.state,
    };
  }

  /** Single flight per SPKI: concurrent new connections to the same key share one attestation. */
  private attestOnce(spki: string, socket: TLSSocket, refresh = false): Promise<AttestedIdentity> {
    const running = this.inflight.get(spki);
    if (running) return running;
    const p = this.opts
      .attest({ socket, spkiSha256: spki, ...(refresh ? { refresh } : {}) })
      .then((identity) => {
        if (identity.spkiSha256 !== spki) {
          throw new VerificationError(
            'ERR_ATTEST_SPKI_MISMATCH',
            `expected the attested TLS key ${identity.spkiSha256} to be the connection's key ${spki}`,
          );
        }
        return identity;
      })
      .finally(() => this.inflight.delete(spki));
    this.inflight.set(spki, p);
    return p;
  }

  private accept(verified: AttestedIdentity, reason: AttestationEvent['reason']): void {
    const known = this.pins.get(verified.spkiSha256);
    // The evidence as received goes to the archive, not into the pin cache: the pin keeps its id.
    if (!this.recordedPins.has(verified)) this.recordedPins.set(verified, this.opts.onPin?.(verified, reason) ?? null);
    const evidenceId = this.recordedPins.get(verified) ?? undefined;
    const { evidence: _archived, ...kept } = verified;
    const identity: AttestedIdentity = evidenceId ? { ...kept, evidenceId } : kept;
    this.pins.set(identity);
    this.recovered();
    this.opts.onEvent?.({ upstream: this.opts.upstream, result: 'verified', reason, spkiSha256: identity.spkiSha256 });
    this.opts.logger.info(
      {
        event: 'attestation.verified',
        upstream: this.opts.upstream,
        reason,
        kind: identity.kind,
        spkiSha256: identity.spkiSha256,
        measurement: identity.measurement,
        tag: identity.tag,
        bundleVersion: identity.bundleVersion,
        expiresAt: identity.expiresAt,
        newKey: !known,
        ...(evidenceId ? { evidence: evidenceId } : {}),
      },
      'attestation verified',
    );
    this.schedule(identity);
  }

  private recovered(): void {
    this.circuit.success();
    this.lastError = undefined;
    this.retries = 0;
    this.clearTimer('retry');
  }

  private fail(err: TresorError, reason: AttestationEvent['reason'], spki?: string, count = true): void {
    if (count) this.circuit.failure(err);
    this.lastError = { code: err.code, message: err.message, at: this.opts.clock().toISOString() };
    this.opts.onEvent?.({ upstream: this.opts.upstream, result: 'failed', code: err.code, reason, ...(spki ? { spkiSha256: spki } : {}) });
    if (this.opts.mode === 'enforce') this.scheduleRetry();
    const entry = { event: 'attestation.failed', upstream: this.opts.upstream, reason, code: err.code, phase: err.phase, spkiSha256: spki };
    if (this.opts.mode === 'warn') {
      this.opts.logger.warn(entry, `attestation failed (warn mode, forwarding anyway): ${err.message}`);
      return;
    }
    this.opts.logger.error(entry, `attestation failed: ${err.message}`);
    throw err;
  }

  /** Refresh ahead of expiry, and lapse the pin at its expiry unless a refresh renewed it. */
  private schedule(identity: AttestedIdentity): void {
    if (this.stopped) return;
    const key = identity.spkiSha256;
    const now = this.opts.clock().getTime();
    const expires = Date.parse(identity.expiresAt);
    const refreshAt = Math.max(now + 1_000, expires - this.opts.refreshAheadMs);
    if (refreshAt < expires) this.setTimer(key, refreshAt - now, () => void this.refresh('refresh', key));
    const atExpiry = (): void => {
      // A timer may fire a little early; a renewal re-arms this timer itself (accept → schedule).
      const left = expires - this.opts.clock().getTime();
      if (left > 0 && this.pins.isFresh(key)) return this.setTimer(`${key}:lapse`, left + 1, atExpiry);
      const bundleEnded = identity.bundleValidUntil !== undefined && Date.parse(identity.bundleValidUntil) <= expires;
      this.lapse(key, bundleEnded
        ? new VerificationError('ERR_BUNDLE_EXPIRED', `the trust bundle v${identity.bundleVersion} that allowed this key was valid until ${identity.bundleValidUntil}`)
        : new VerificationError('ERR_ATTEST_PIN_EXPIRED', `the attestation of TLS key ${key} expired at ${identity.expiresAt} without a successful refresh`));
    };
    this.setTimer(`${key}:lapse`, expires - now, atExpiry);
  }

  private setTimer(name: string, ms: number, run: () => void): void {
    this.clearTimer(name);
    const t = setTimeout(() => {
      this.timers.delete(name);
      if (!this.stopped) run();
    }, Math.max(0, ms));
    t.unref();
    this.timers.set(name, t);
  }

  private clearTimer(name: string): void {
    const t = this.timers.get(name);
    if (t) clearTimeout(t);
    this.timers.delete(name);
  }

  /** After a failure, attest again in the background (circuit backoff) so readiness recovers without traffic. */
  private scheduleRetry(): void {
    if (!this.opts.openSocket || this.stopped || this.timers.has('retry')) return;
    const c = this.opts.circuit ?? { baseMs: 1_000, maxMs: 60_000 };
    const delay = Math.min(c.maxMs, c.baseMs * 2 ** Math.min(this.retries++, 20));
    this.setTimer('retry', delay, () => void this.refresh('refresh'));
  }

  /** The pin of `spki` is no longer trusted: refuse its connections from now on and close the idle ones. */
  private lapse(spki: string, err: TresorError): void {
    this.pins.withdraw(spki);
    this.clearTimer(spki);
    this.clearTimer(`${spki}:lapse`);
    this.lapses.push({ spkiSha256: spki, at: this.opts.clock().toISOString(), code: err.code, message: err.message });
    if (this.lapses.length > 64) this.lapses.shift();
    this.opts.logger.warn(
      { event: 'attestation.lapsed', upstream: this.opts.upstream, spkiSha256: spki, code: err.code },
      `attestation pin lapsed: ${err.message}; no further request goes out on connections to this key`,
    );
    this.opts.onRevoke?.(spki);
    if (this.opts.mode === 'enforce' && this.pins.fresh().length === 0) this.scheduleRetry();
  }

  /**
   * Attest over a new connection. With `key` (a pin's refresh), that pin lapses at once unless the
   * refresh proves the same key again: on failure, and when the router now proves another key.
   */
  private async refresh(reason: AttestationEvent['reason'], key?: string): Promise<void> {
    if (!this.opts.openSocket || this.stopped) return;
    let socket: TLSSocket | undefined;
    let spki: string | undefined;
    try {
      socket = await this.opts.openSocket();
      const cert = peerCertificate(socket);
      if (!cert) throw new UpstreamError('ERR_ATTEST_NO_PEER_CERTIFICATE', 'the upstream presented no TLS certificate');
      spki = spkiSha256(cert);
      const identity = await this.attestOnce(spki, socket, key !== undefined);
      this.accept(identity, reason);
      if (key !== undefined && spki !== key && this.pins.isFresh(key)) {
        this.lapse(key, new VerificationError('ERR_ATTEST_KEY_CHANGED', `the refresh found the router proving TLS key ${spki} instead of the pinned ${key}`));
      }
    } catch (e) {
      const err = toTresorError(e);
      if (key !== undefined && this.pins.isFresh(key)) this.lapse(key, err);
      try {
        this.fail(err, reason, spki);
      } catch {
        // enforce mode: already logged and counted; a background refresh has no caller to throw to.
      }
    } finally {
      socket?.destroy();
    }
  }
}
