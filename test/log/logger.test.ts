import { describe, expect, test } from 'vitest';
import { accessLogger, createLogger } from '../../src/log/logger.js';
import { LogSink } from '../helpers/log-sink.js';

const flush = () => new Promise((r) => setImmediate(r));

describe('logger', () => {
  test('the main logger censors secrets wherever they slip in; the access logger writes its own fields as given, to the same place', async () => {
    const sink = new LogSink();
    const logger = createLogger({ level: 'info', format: 'json', destination: sink });
    logger.info({ authorization: 'Bearer a', headers: { authorization: 'Bearer b' }, nested: { api_key: 'k', body: 'text' } }, 'slipped');
    accessLogger(logger).info({ reqId: 'r1', upstream: 'u', method: 'POST', path: '/v1/chat/completions', status: 200, requestBytes: 3, responseBytes: 4, ms: 1.5 }, 'request');
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
});
