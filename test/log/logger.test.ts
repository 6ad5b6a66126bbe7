import { describe, expect, test } from 'vitest';
import { Writable } from 'node:stream';
import { accessLogger, createLogger, flushLogger } from '../../src/log/logger.js';
import { LogSink } from '../helpers/log-sink.js';

const flush = () => new Promise((r) => setImmediate(r));

describe('logger', () => {
  test('the main logger censors secrets wherever they slip in; the access logger writes its own fields as given, to the same place', async () => {
    const sink = new LogSink();
    const logger = createLogger({ level: 'info', format: 'json', destination: sink });
    logger.info({ authorization: 'Bearer a', headers: { authorization: 'Bearer b' }, nested: { api_key: 'k', body: 'text' } }, 'slipped');
    accessLogger(logger)({ reqId: 'r1', upstream: 'u', method: 'POST', path: '/v1/chat/completions', status: 200, requestBytes: 3, responseBytes: 4, ms: 1.5 });
    await flush();
    const [slipped, access] = sink.records;
    expect(slipped).toMatchObject({ authorization: '[redacted]', headers: { authorization: '[redacted]' }, nested: { api_key: '[redacted]', body: '[redacted]' } });
    expect(sink.text).not.toMatch(/Bearer|"k"|"text"/);
    expect(access).toMatchObject({ service: 'tresor-attest', level: 30, msg: 'request', reqId: 'r1', upstream: 'u', method: 'POST', path: '/v1/chat/completions', status: 200, requestBytes: 3, responseBytes: 4, ms: 1.5 });
    // Redaction on the main logger is unchanged by the access logger built from it.
    logger.info({ token: 't' }, 'after');
    await flush();
    expect(sink.records.at(-1)).toMatchObject({ token: '[redacted]' });
  });

  test('flushLogger waits for the destination to flush (the last lines before an exit), but never longer than its bound', async () => {
    // A destination that flushes on its own time, and one that never calls back (a stuck pipe).
    const slow = Object.assign(new Writable({ write: (_c, _e, cb) => cb() }), { flush: (cb: () => void) => setTimeout(cb, 150) });
    const stuck = Object.assign(new Writable({ write: (_c, _e, cb) => cb() }), { flush: () => undefined });
    let t = Date.now();
    await flushLogger(createLogger({ level: 'info', format: 'json', destination: slow }), 5000);
    expect(Date.now() - t).toBeGreaterThanOrEqual(140);
    t = Date.now();
    await flushLogger(createLogger({ level: 'info', format: 'json', destination: stuck }), 200);
    expect(Date.now() - t).toBeGreaterThanOrEqual(190);
    expect(Date.now() - t).toBeLessThan(4000);
  });
});

