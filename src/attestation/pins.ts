import type { Clock } from '../types.js';
import type { AttestedIdentity } from './identity.js';

/** Verified SPKI pins of one upstream, each valid until its `expiresAt`. Bounded. */
export class PinCache {
  private readonly pins = new Map<string, AttestedIdentity>();

  constructor(
    private readonly clock: Clock,
    private readonly maxEntries = 64,
  ) {}

  /** The identity pinned for this SPKI, only while fresh. */
  get(spkiSha256: string): AttestedIdentity | undefined {
    const p = this.pins.get(spkiSha256);
    if (!p) return undefined;
    if (Date.parse(p.expiresAt) <= this.clock().getTime()) return undefined;
    return p;
  }

  set(identity: AttestedIdentity): void {
    this.pins.delete(identity.spkiSha256);
    this.pins.set(identity.spkiSha256, identity);
    while (this.pins.size > this.maxEntries) {
      const oldest = this.pins.keys().next().value as string;
      this.pins.delete(oldest);
    }
  }

  delete(spkiSha256: string): void {
    this.pins.delete(spkiSha256);
  }

  /** Fresh pins, most recently verified last. */
  fresh(): AttestedIdentity[] {
    const now = this.clock().getTime();
    return [...this.pins.values()].filter((p) => Date.parse(p.expiresAt) > now);
  }

  all(): AttestedIdentity[] {
    return [...this.pins.values()];
  }
}
