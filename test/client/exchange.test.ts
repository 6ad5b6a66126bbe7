import { describe, expect, it } from 'vitest';
import { observeBody } from '../../src/client/exchange.js';
import type { ExchangeObserver } from '../../src/transport/hooks.js';

/** An observer that records what it is shown, in order. */
function recorder(): { obs: ExchangeObserver; seen: string[] } {
  const seen: string[] = [];
  return {
    seen,
    obs: {
      onRequestChunk: (c) => void seen.push(`chunk ${Buffer.from(c).toString()}`),
      onRequestEnd: () => void seen.push('end'),
    } as ExchangeObserver,
  };
}

describe('observeBody (the library request body shown to the receipt observer)', () => {
  it('ends the request (the digest is final) right after a whole body', () => {
    const r = recorder();
    let bytes = 0;
    expect(observeBody('{"a":1}', r.obs, (n) => (bytes += n))).toBe('{"a":1}');
    expect(r.seen).toEqual(['chunk {"a":1}', 'end']);
    expect(bytes).toBe(7);
  });

  it('ends an absent body at once (the digest of no bytes)', () => {
    const r = recorder();
    observeBody(undefined, r.obs, () => undefined);
    expect(r.seen).toEqual(['end']);
  });

  it('ends a streamed body after its last chunk has been read, not before', async () => {
    const r = recorder();
    const body = observeBody(
      (async function* () {
        yield 'one';
        yield Buffer.from('two');
      })() as never,
      r.obs,
      () => undefined,
    ) as unknown as AsyncIterable<Uint8Array>;
    const it = body[Symbol.asyncIterator]();
    await it.next();
    expect(r.seen).toEqual(['chunk one']);
    await it.next();
    expect(r.seen).toEqual(['chunk one', 'chunk two']);
    expect(await it.next()).toMatchObject({ done: true });
    expect(r.seen).toEqual(['chunk one', 'chunk two', 'end']);
  });
});
