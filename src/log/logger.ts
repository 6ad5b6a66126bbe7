import { randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import pino, { type DestinationStream, type Logger } from 'pino';
import type PinoPretty from 'pino-pretty';
import { BufferedLines } from './buffered.js';
import { directAccessLog, LINE_BASE, type AccessLog } from './access-line.js';

export type { Logger } from 'pino';

/**
 * Redaction is defence in depth: the daemon never passes headers or bodies to the logger in
 * the first place, but any object that slips through has these paths censored.
 */
export const REDACT_PATHS = [
  'authorization',
  'Authorization',
  'cookie',
  'set-cookie',
  'x-api-key',
  'apiKey',
  'api_key',
  'token',
  'body',
  'headers.authorization',
  'headers.cookie',
  'headers["set-cookie"]',
  'headers["x-api-key"]',
  'req.headers.authorization',
  'req.headers.cookie',
  '*.authorization',
  '*.apiKey',
  '*.api_key',
  '*.body',
];

export interface LoggerOptions {
  level: string;
  format: 'json' | 'pretty';
  /**
   * Where lines go (tests pass a sink); default stdout (JSON: a `BufferedLines` on fd 1, whose
   * access lines are gathered into fewer writes).
   */
  destination?: DestinationStream | BufferedLines;
}

const lineOptions = (level: string) => ({ level, base: { ...LINE_BASE }, timestamp: pino.stdTimeFunctions.isoTime });

/** Where a JSON logger made by createLogger writes its access lines (see accessLogger). */
const accessLines = new WeakMap<Logger, DestinationStream>();

/**
 * pino-pretty, loaded only when a pretty logger is made: the JSON default never needs its modules
 * (with pino-roll's, ~2.3 MB of the idle daemon's 22 MB heap that every full collection marks).
 */
const loadPretty = () => createRequire(import.meta.url)('pino-pretty') as typeof PinoPretty;

export function createLogger(opts: LoggerOptions): Logger {
  const base = { ...lineOptions(opts.level), redact: { paths: REDACT_PATHS, censor: '[redacted]' } };
  if (opts.format === 'pretty') {
    const toStdout = opts.destination === undefined;
    return pino(base, loadPretty()({ colorize: toStdout && process.stdout.isTTY === true, sync: toStdout, destination: (opts.destination as NodeJS.WritableStream | undefined) ?? 1 }));
  }
  const dest = opts.destination ?? new BufferedLines(1);
  const logger = pino(base, dest instanceof BufferedLines ? dest.main : dest);
  accessLines.set(logger, dest instanceof BufferedLines ? dest.access : dest);
  return logger;
}

/**
 * The per-request access line's writer: the same destination and bindings as `logger`, without
 * the redaction walk. Every field of that line is a primitive the daemon computes itself
 * (upstream name, method, path without its query, status, byte counts, time, error code,
 * request id), never a header or a body, so there is nothing to censor; redaction (a walk over
 * every member of every line, 15–20 % of the daemon's CPU per request) stays on for everything
 * else. For a JSON logger made by createLogger the line is built by one precompiled function
 * (access-line.ts) and written where pino would write it (on standard output, a `BufferedLines`,
 * its lines are gathered into fewer writes); any other logger (pretty, a child) logs it through
 * pino. Built once, not per request; like pino's, at the logger's level when built.
 */
export function accessLogger(logger: Logger): AccessLog {
  const access = accessLines.get(logger);
  if (access) return logger.isLevelEnabled('info') ? directAccessLog(access) : () => undefined;
  const child = logger.child({}, { redact: { paths: [] } });
  return (entry) => child.info(entry, 'request');
}

/**
 * Wait until what was logged has reached the destination (stdout is written asynchronously), so
 * that the last lines before an exit are not lost; bounded, so that a stuck destination (a full
 * pipe nobody reads) cannot hold the exit.
 */
export function flushLogger(logger: Logger, timeoutMs = 2000): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, timeoutMs);
    const done = () => {
      clearTimeout(timer);
      resolve();
    };
    try {
      logger.flush(done);
    } catch {
      done();
    }
  });
}

const REQUEST_ID_RE = /^[A-Za-z0-9._:-]{1,128}$/;

/** Honour the app's X-Request-Id when it is sane (charset and length bounded); otherwise mint one. */
export function requestIdFrom(header: string | string[] | undefined): string {
  const v = Array.isArray(header) ? header[0] : header;
  return v !== undefined && REQUEST_ID_RE.test(v) ? v : randomUUID();
}
