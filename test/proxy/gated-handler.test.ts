import v8 from 'node:v8';
import vm from 'node:vm';
import type { Dispatcher } from 'undici';
import { describe, expect, test } from 'vitest';
import { gatedHandler, type StreamGate } from '../../src/proxy/gated-handler.js';

/**
 * The pin gate's wrapper of an undici handler (src/proxy/gated-handler.ts), on its own. Node keeps
 * an HTTP/2 stream, and with it undici's request and this wrapper, reachable for a while after the
 * exchange ended: a finished wrapper must not keep the caller's handler (and all it holds: the
 * response body stream, the app's request and response) alive with it.
 */
v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

/** A full collection after the current job (a WeakRef's target is kept alive until its job ends). */
async function collect(): Promise<void> {
  await new Promise((r) => setImmediate(r));
  gc();
}

const gate: StreamGate = { mayOpenStream: () => true, socket: undefined, redispatch: () => true };

/** A caller's handler with some weight, reachable only through `gated` once this returns. */
function wrapped(form: 'legacy' | 'controller', calls: string[]): { gated: Record<string, (...a: unknown[]) => unknown>; inner: WeakRef<object>; opts: WeakRef<object> } {
  const payload = Buffer.alloc(64 * 1024);
  const inner =
    form === 'legacy'
      ? { payload, onConnect: () => calls.push('connect'), onHeaders: () => calls.push('headers'), onData: () => calls.push('data'), onComplete: () => calls.push('complete'), onError: (e: Error) => calls.push(`error ${e.message}`) }
      : { payload, onRequestStart: () => calls.push('start'), onResponseStart: () => calls.push('headers'), onResponseData: () => calls.push('data'), onResponseEnd: () => calls.push('complete'), onResponseError: (_c: unknown, e: Error) => calls.push(`error ${e.message}`) };
  const opts = { path: '/v1/models', method: 'GET', body: Buffer.alloc(1024) } as Dispatcher.DispatchOptions;
  const gated = gatedHandler(gate, opts, inner as unknown as Dispatcher.DispatchHandler) as unknown as Record<string, (...a: unknown[]) => unknown>;
  return { gated, inner: new WeakRef(inner), opts: new WeakRef(opts) };
}

describe('gatedHandler', () => {
  for (const form of ['legacy', 'controller'] as const) {
    const [start, headers, data, end] = form === 'legacy' ? ['onConnect', 'onHeaders', 'onData', 'onComplete'] : ['onRequestStart', 'onResponseStart', 'onResponseData', 'onResponseEnd'];

    test(`${form} form: the caller's handler is told everything, and let go of once the exchange completes`, async () => {
      const calls: string[] = [];
      const { gated, inner, opts } = wrapped(form, calls);
      gated[start]!(() => undefined);
      gated[headers]!(200, [], () => undefined, 'OK');
      gated[data]!(Buffer.from('x'));
      await collect();
      expect(inner.deref()).toBeDefined();
      gated[end]!(null);
      expect(calls).toEqual([form === 'legacy' ? 'connect' : 'start', 'headers', 'data', 'complete']);
      // The wrapper itself is still reachable (as from a Node HTTP/2 stream); what it wrapped is not.
      await collect();
      expect(inner.deref()).toBeUndefined();
      expect(opts.deref()).toBeUndefined();
      expect(gated).toBeDefined();
    });

    test(`${form} form: the caller's handler is let go of once it was told of a failure`, async () => {
      const calls: string[] = [];
      const { gated, inner } = wrapped(form, calls);
      gated[start]!(() => undefined);
      if (form === 'legacy') gated.onError!(new Error('reset'));
      else gated.onResponseError!({}, new Error('reset'));
      expect(calls).toEqual([form === 'legacy' ? 'connect' : 'start', 'error reset']);
      await collect();
      expect(inner.deref()).toBeUndefined();
      expect(gated).toBeDefined();
    });
  }
});
