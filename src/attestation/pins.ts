import type { Clock } from '../types.js';
import type { AttestedIdentity } from './identity.js';

/** Verified SPKI pins of one upstream, each valid until its `expiresAt`. Bounded. */
export class PinCache {
  private readonly pins = new Map<string, AttestedIdentity>();

  constructor(
    private readonly clock: Clock,
    private readonly maxEntries = 64,
  ) {}

  /** Expiry instants (ms) of the pins, for the per-request check: a lookup and a comparison. */
  private readonly expiries = new Map<string, number>();

  /** Bumped by every change (set, withdraw, delete): what was derived from the pins is stale once it moves. */
  version = 0;

  /** When this SPKI's pin stops being fresh (ms), or undefined when it has none. */
  freshUntil(spkiSha256: string): number | undefined {
    return this.expiries.get(spkiSha256);
  }

  /** The identity pinned for this SPKI, only while fresh. */
  get(spkiSha256: string): AttestedIdentity | undefined {
    return this.isFresh(spkiSha256) ? this.pins.get(spkiSha256) : undefined;
  }

  /** The identity pinned for this SPKI, fresh or lapsed (kept until evicted). */
  known(spkiSha256: string): AttestedIdentity | undefined {
    return this.pins.get(spkiSha256);
  }

  /** Whether this SPKI has a fresh pin now (no date parsing: cheap enough for every request). */
  isFresh(spkiSha256: string): boolean {
    const until = this.expiries.get(spkiSha256);
    return until !== undefined && until > this.clock().getTime();
  }

  set(identity: AttestedIdentity): void {
    this.version++;
    this.pins.delete(identity.spkiSha256);
    this.pins.set(identity.spkiSha256, identity);
    this.expiries.set(identity.spkiSha256, Date.parse(identity.expiresAt));
    while (this.pins.size > this.maxEntries) {
      const oldest = this.pins.keys().next().value as string;
      this.delete(oldest);
    }
  }

  /** Withdraw the pin now (it lapsed); the identity is kept for matching receipts issued before. */
  withdraw(spkiSha256: string): void {
    this.version++;
    this.expiries.delete(spkiSha256);
  }

  delete(spkiSha256: string): void {
    this.version++;
    this.pins.delete(spkiSha256);
    this.expiries.delete(spkiSha256);
  }

  /** Fresh pins, most recently verified last. */
  fresh(): AttestedIdentity[] {
    return [...this.pins.values()].filter((p) => this.isFresh(p.spkiSha256));
  }

  all(): AttestedIdentity[] {
    return [...this.pins.values()];
  }
}
