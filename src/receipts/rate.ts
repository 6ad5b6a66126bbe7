import type { Clock } from '../types.js';

/**
 * A token bucket: at most `ratePerSecond` on average, bursts up to `burst`. `take()` takes a token
 * at once when one is there and nobody is waiting (undefined: no promise, no turn of the event
 * loop, as most receipt fetches find it), else returns a promise that resolves when the caller's
 * token is there, so callers queue (in order) instead of hammering the router.
 */
export class TokenBucket {
  private tokens: number;
  private last: number;
  private chain: Promise<void> = Promise.resolve();
  /** Takers queued on `chain` and not yet served: while any wait, a new taker queues behind them. */
  private waiting = 0;

  constructor(
    private readonly ratePerSecond: number,
    private readonly burst: number,
    private readonly clock: Clock,
    private readonly sleep: (ms: number) => Promise<void>,
  ) {
    this.tokens = burst;
    this.last = clock().getTime();
  }

  take(): Promise<void> | undefined {
    if (this.waiting === 0 && this.takeNow()) return undefined;
    this.waiting++;
    const next = this.chain.then(async () => {
      try {
        while (!this.takeNow()) await this.sleep(Math.ceil(((1 - this.tokens) / this.ratePerSecond) * 1000));
      } finally {
        this.waiting--;
      }
    });
    this.chain = next.catch(() => undefined);
    return next;
  }

  /** Refill for the time passed, then take a token if there is one. */
  private takeNow(): boolean {
    const now = this.clock().getTime();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.ratePerSecond);
    this.last = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

/**
 * At most `limit` tasks at once; the rest wait in FIFO order. A waiter is one resolver in an array
 * (at 1,000 streams, 1,000 receipt jobs wait here at once: what each holds is memory per stream).
 */
export class Semaphore {
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly limit: number) {}

  /** Take a slot: undefined when one is free now, else a promise that resolves with the slot handed over. Pair with `release`. */
  acquire(): Promise<void> | undefined {
    if (this.active < this.limit) {
      this.active++;
      return undefined;
    }
    return new Promise<void>((r) => this.waiting.push(r));
  }

  /** Give a slot back: to the first waiter, if any. */
  release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.active--;
  }

  async run<T>(task: () => Promise<T>): Promise<T> {
    await this.acquire();
    try {
      return await task();
    } finally {
      this.release();
    }
  }
}
