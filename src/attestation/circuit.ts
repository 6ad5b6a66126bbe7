import type { Clock } from '../types.js';
import type { TresorError } from '../errors/index.js';

/**
 * Opens after `threshold` consecutive failures; while open, callers fail fast with the last
 * error instead of hammering an upstream that keeps failing attestation. The open interval
 * doubles per further failure (base → max), and one trial is allowed when it elapses.
 */
export class CircuitBreaker {
  private failures = 0;
  private openUntil = 0;
  private lastError: TresorError | undefined;

  constructor(
    private readonly opts: { threshold: number; baseMs: number; maxMs: number; clock: Clock },
  ) {}

  /** Throws the last error while the circuit is open. */
  check(): void {
    if (this.lastError && this.opts.clock().getTime() < this.openUntil) throw this.lastError;
  }

  success(): void {
    this.failures = 0;
    this.openUntil = 0;
    this.lastError = undefined;
  }

  failure(err: TresorError): void {
    this.failures += 1;
    this.lastError = err;
    if (this.failures >= this.opts.threshold) {
      const exp = Math.min(this.opts.maxMs, this.opts.baseMs * 2 ** (this.failures - this.opts.threshold));
      this.openUntil = this.opts.clock().getTime() + exp;
    }
  }

  get state(): { open: boolean; failures: number; openUntil?: string; lastError?: string } {
    const open = this.lastError !== undefined && this.opts.clock().getTime() < this.openUntil;
    return {
      open,
      failures: this.failures,
      ...(open ? { openUntil: new Date(this.openUntil).toISOString() } : {}),
      ...(this.lastError ? { lastError: this.lastError.code } : {}),
    };
  }
}
