import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { UpstreamError, VerificationError, toTresorError, type TresorError } from '../errors/index.js';
import { peerCertificate, spkiSha256 } from '../x509/certificate.js';
import type { Clock } from '../types.js';
import { CircuitBreaker } from './circuit.js';
import { attestationHeaderValue, type AttestedIdentity } from './identity.js';
import { PinCache } from './pins.js';

export type AttestationMode = 'enforce' | 'warn' | 'off';

/** Obtains and verifies evidence over `socket` (the connection about to be trusted). */
export type AttestOverSocket = (ctx: { socket: TLSSocket; spkiSha256: string }) => Promise<AttestedIdentity>;

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
  /** A pin lapsed without a successful refresh: drop pooled connections to that key. */
  onRevoke?: (spkiSha256: string) => void;
  /** The operator's test-root files (`attestation.test_roots_file`), if any: shown on /status and in headers. */
  testRootsFiles?: readonly string[];
}

/**
 * Connection pinning for one upstream. Every new TLS connection is checked before the pool may
 * use it: its leaf SPKI must be bound to a fresh verified attestation, obtained over that very
 * connection unless the same key is already pinned. Verified pins are refreshed ahead of expiry;
 * a new key (rotation, another pod) triggers one attestation; repeated failures open a circuit.
 */
export class AttestationManager {
  private readonly pins: PinCache;
  private readonly circuit: CircuitBreaker;
  private readonly inflight = new Map<string, Promise<AttestedIdentity>>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private lastError: { code: string; message: string; at: string } | undefined;
  private stopped = false;

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
    if (this.pins.get(spki)) return;
    try {
      this.circuit.check();
    } catch (e) {
      return this.fail(toTresorError(e), 'connection', spki, false);
    }
    try {
      const identity = await this.attestOnce(spki, socket);
      this.accept(identity, 'connection');
    } catch (e) {
      return this.fail(toTresorError(e), 'connection', spki);
    }
  }

  /** Whether requests may be forwarded now (for /readyz and the dispatch gate). */
  readiness(): { ready: boolean; reason?: string } {
    if (this.opts.mode !== 'enforce') return { ready: true, reason: `attestation ${this.opts.mode}` };
    if (this.pins.fresh().length > 0) return { ready: true };
    return { ready: false, reason: this.lastError ? `attestation failed: ${this.lastError.code}` : 'no verified attestation yet' };
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

  /** Headers that tell the app what was verified. */
  responseHeaders(): Record<string, string> {
    if (this.opts.mode === 'off') return { 'x-tresor-attestation': 'off' };
    const id = this.current();
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
      circuit: this.circuit.state,
    };
  }

  /** Single flight per SPKI: concurrent new connections to the same key share one attestation. */
  private attestOnce(spki: string, socket: TLSSocket): Promise<AttestedIdentity> {
    const running = this.inflight.get(spki);
    if (running) return running;
    const p = this.opts
      .attest({ socket, spkiSha256: spki })
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

  private accept(identity: AttestedIdentity, reason: AttestationEvent['reason']): void {
    const known = this.pins.get(identity.spkiSha256);
    this.pins.set(identity);
    this.circuit.success();
    this.lastError = undefined;
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
      },
      'attestation verified',
    );
    this.schedule(identity);
  }

  private fail(err: TresorError, reason: AttestationEvent['reason'], spki?: string, count = true): void {
    if (count) this.circuit.failure(err);
    this.lastError = { code: err.code, message: err.message, at: this.opts.clock().toISOString() };
    this.opts.onEvent?.({ upstream: this.opts.upstream, result: 'failed', code: err.code, reason, ...(spki ? { spkiSha256: spki } : {}) });
    const entry = { event: 'attestation.failed', upstream: this.opts.upstream, reason, code: err.code, phase: err.phase, spkiSha256: spki };
    if (this.opts.mode === 'warn') {
      this.opts.logger.warn(entry, `attestation failed (warn mode, forwarding anyway): ${err.message}`);
      return;
    }
    this.opts.logger.error(entry, `attestation failed: ${err.message}`);
    throw err;
  }

  /** Refresh ahead of expiry, and revoke the pin if it lapses without a successful refresh. */
  private schedule(identity: AttestedIdentity): void {
    if (this.stopped) return;
    const key = identity.spkiSha256;
    const prior = this.timers.get(key);
    if (prior) clearTimeout(prior);
    const now = this.opts.clock().getTime();
    const expires = Date.parse(identity.expiresAt);
    const refreshAt = Math.max(now + 1_000, expires - this.opts.refreshAheadMs);
    const timer = setTimeout(() => {
      this.timers.delete(key);
      void this.refresh('refresh').finally(() => {
        if (!this.pins.get(key)) {
          const lapse = Math.max(0, Date.parse(identity.expiresAt) - this.opts.clock().getTime());
          const t = setTimeout(() => {
            this.timers.delete(`${key}:lapse`);
            if (!this.pins.get(key)) this.revoke(key);
          }, lapse);
          t.unref();
          this.timers.set(`${key}:lapse`, t);
        }
      });
    }, refreshAt - now);
    timer.unref();
    this.timers.set(key, timer);
  }

  private revoke(spki: string): void {
    this.pins.delete(spki);
    this.opts.logger.warn({ event: 'attestation.expired', upstream: this.opts.upstream, spkiSha256: spki }, 'attestation pin expired without a successful refresh');
    this.opts.onRevoke?.(spki);
  }

  private async refresh(reason: AttestationEvent['reason']): Promise<void> {
    if (!this.opts.openSocket || this.stopped) return;
    let socket: TLSSocket | undefined;
    try {
      socket = await this.opts.openSocket();
      const cert = peerCertificate(socket);
      if (!cert) throw new UpstreamError('ERR_ATTEST_NO_PEER_CERTIFICATE', 'the upstream presented no TLS certificate');
      const spki = spkiSha256(cert);
      const identity = await this.attestOnce(spki, socket);
      this.accept(identity, reason);
    } catch (e) {
      try {
        this.fail(toTresorError(e), reason);
      } catch {
        // enforce mode: already logged and counted; a background refresh has no caller to throw to.
      }
    } finally {
      socket?.destroy();
    }
  }
}
