import { describe, expect, it } from 'vitest';
import { TokenBucket } from '../../src/receipts/rate.js';

/** A bucket on a hand-moved clock whose sleep advances it (and records each wait). */
function bucketAt(ratePerSecond: number, burst: number) {
  let now = 1_000_000;
  const waits: number[] = [];
  const sleep = async (ms: number) => {
    waits.push(ms);
    now += ms;
  };
  return { bucket: new TokenBucket(ratePerSecond, burst, () => new Date(now), sleep), waits, advance: (ms: number) => void (now += ms) };
}

describe('TokenBucket', () => {
  it('hands a free token over at once, without a promise, while nobody waits', () => {
    const { bucket, waits } = bucketAt(10, 2);
    expect(bucket.take()).toBeUndefined();
    expect(bucket.take()).toBeUndefined();
    expect(waits).toEqual([]);
  });

  it('makes the taker past the burst wait for its token (the rate holds)', async () => {
    const { bucket, waits } = bucketAt(10, 2);
    bucket.take();
    bucket.take();
    const third = bucket.take();
    expect(third).toBeInstanceOf(Promise);
    await third;
    expect(waits).toEqual([100]);
  });

  it('queues a new taker behind one that waits, even when a token has come meanwhile (first come, first served)', async () => {
    const { bucket, waits, advance } = bucketAt(10, 1);
    bucket.take();
    const order: string[] = [];
    const first = (bucket.take() as Promise<void>).then(() => order.push('first'));
    advance(100); // a token is there again, but `first` is still queued
    const second = bucket.take();
    expect(second).toBeInstanceOf(Promise);
    await Promise.all([first, (second as Promise<void>).then(() => order.push('second'))]);
    expect(order).toEqual(['first', 'second']);
    expect(waits).toEqual([100]);
    // Nobody waits any more: the next free token is handed over at once again.
    advance(100);
    expect(bucket.take()).toBeUndefined();
  });
});
