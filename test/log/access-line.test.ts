import pino from 'pino';
import { describe, expect, test } from 'vitest';
import { accessLineText, LINE_BASE, type AccessEntry } from '../../src/log/access-line.js';
import { accessLogger, createLogger } from '../../src/log/logger.js';
import { LogSink } from '../helpers/log-sink.js';
import { parseStrictJson } from '../helpers/strict-json.js';

/**
 * The precompiled access line (src/log/access-line.ts) against pino, the serialiser it replaces on
 * the hot path: byte for byte the line pino writes for `logger.info(entry, 'request')` with the
 * daemon's bindings, hostile strings included.
 */
const TIME = '2026-12-06T11:20:03.492Z';

/** pino as the daemon configured it before (bindings, levels), with a fixed time; returns the line it writes. */
function pinoLine(entry: AccessEntry): string {
  let out = '';
  const logger = pino({ level: 'info', base: { ...LINE_BASE }, timestamp: () => `,"time":"${TIME}"` }, { write: (s: string) => void (out += s) });
  // The entry as forward.ts logged it before: the error only when there is one.
  const { error, ...rest } = entry;
  logger.info({ ...rest, ...(error ? { error } : {}) }, 'request');
  return out;
}

const base: AccessEntry = { reqId: 'r1', upstream: 'tresor', method: 'POST', path: '/v1/chat/completions', status: 200, requestBytes: 312, responseBytes: 1024, ms: 1.234567 };

const HOSTILE = [
  '',
  'plain',
  'a"quote',
  'back\\slash',
  '"\\"\\\\',
  'tab\there',
  'nul\u0000and\u001fcontrol',
  'new\nline\r\n',
  'del\u007f',
  'latin1 \u00e9\u00ff\u0080',
  'line sep \u2028 para sep \u2029',
  'emoji \u{1F600}',
  '</script><script>alert(1)</script>',
  '{"level":50,"msg":"forged"}',
  `${'x'.repeat(99)}"`,
  `${'y'.repeat(150)}"\\\n`,
  `${'z'.repeat(200)}`,
];

describe('the access line', () => {
  test('is byte for byte the line pino writes, for hostile strings in every string field', () => {
    for (const s of HOSTILE) {
      for (const field of ['reqId', 'upstream', 'method', 'path', 'error'] as const) {
        const entry = { ...base, [field]: s };
        const line = accessLineText(entry, TIME);
        expect(line).toBe(pinoLine(entry));
        const parsed = parseStrictJson(line) as Record<string, unknown>;
        // An empty error is no error (omitted, as before).
        if (field !== 'error' || s !== '') expect(parsed[field]).toBe(s);
        expect(parsed.msg).toBe('request');
      }
    }
  });

  test('numbers, a missing method and error, and the error when there is one, as pino writes them', () => {
    const cases: AccessEntry[] = [
      base,
      { ...base, method: undefined },
      { ...base, error: 'ERR_UPSTREAM_FAILED', status: 502 },
      { ...base, error: 'client_closed', status: 499 },
      { ...base, error: undefined },
      { ...base, status: 0, requestBytes: 0, responseBytes: 0, ms: 0 },
      { ...base, ms: 1e21, requestBytes: 2 ** 53 },
      { ...base, ms: Number.NaN, responseBytes: Number.POSITIVE_INFINITY },
      { ...base, ms: -0 },
      { ...base, ms: 0.1 + 0.2 },
    ];
    for (const entry of cases) expect(accessLineText(entry, TIME)).toBe(pinoLine(entry));
    expect(parseStrictJson(accessLineText({ ...base, method: undefined }, TIME))).not.toHaveProperty('method');
  });

  test('a lone surrogate is escaped (strict JSON that reads back as written), where pino on Node 20 writes it raw', () => {
    for (const s of ['\ud800', 'a\udfffb', `${'w'.repeat(120)}\ud83d`]) {
      const line = accessLineText({ ...base, path: s }, TIME);
      expect(line).toMatch(/\\ud[89a-f][0-9a-f]{2}/);
      expect((parseStrictJson(line) as { path: string }).path).toBe(s);
      expect(Buffer.from(line, 'utf8').toString('utf8')).toBe(line);
    }
  });


  test("accessLogger writes the precompiled line where the logger writes, at the logger's level; other loggers log it through pino", () => {
    const sink = new LogSink();
    const log = accessLogger(createLogger({ level: 'info', format: 'json', destination: sink }));
    log(base);
    expect(sink.lines).toHaveLength(1);
    const line = sink.lines[0] as string;
    expect(line.replace(/"time":"[^"]+"/, `"time":"${TIME}"`)).toBe(pinoLine(base).trimEnd());
    expect(Date.parse((parseStrictJson(line) as { time: string }).time)).toBeGreaterThan(Date.now() - 60_000);

    const quiet = new LogSink();
    accessLogger(createLogger({ level: 'warn', format: 'json', destination: quiet }))(base);
    expect(quiet.lines).toHaveLength(0);

    // A child logger (not made by createLogger): pino, the same fields, its bindings kept.
    const viaPino = new LogSink();
    accessLogger(createLogger({ level: 'info', format: 'json', destination: viaPino }).child({ worker: 1 }))({ ...base, error: 'ERR_X' });
    return new Promise<void>((resolve) => setImmediate(resolve)).then(() => {
      expect(viaPino.records).toEqual([expect.objectContaining({ ...base, error: 'ERR_X', worker: 1, msg: 'request', level: 30, service: 'tresor-attest' })]);
    });
  });
});
