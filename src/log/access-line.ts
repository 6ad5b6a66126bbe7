/**
 * The per-request access line, written by one precompiled function instead of pino's generic
 * serialiser (its key walk, type switch and string escaper per field: about 10 µs per request on
 * the hot path). The text is the line pino writes for `logger.info(entry, 'request')` with the
 * daemon's bindings: the same fields in the same order, strict JSON (every string through
 * `JSON.stringify`, which escapes quotes, backslashes, control characters and lone surrogates);
 * test/log/access-line.test.ts keeps pino as the oracle. Every other line stays pino's.
 */
import { isoTime } from './iso-time.js';

/** What one access line says about an exchange, in the order it is written. */
export interface AccessEntry {
  reqId: string;
  upstream: string;
  method: string | undefined;
  /** The forwarded path without its query. */
  path: string;
  status: number;
  requestBytes: number;
  responseBytes: number;
  ms: number;
  /** The error code, when the exchange failed (omitted otherwise). */
  error?: string | undefined;
}

/** Writes one access line. */
export type AccessLog = (entry: AccessEntry) => void;

/** The bindings of every line the daemon logs (pino's `base`). */
export const LINE_BASE = { service: 'tresor-attest' } as const;

/** pino's numeric level for `info`. */
const INFO = 30;

/** A string member: `JSON.stringify` (well-formed JSON: a lone surrogate is escaped, where pino on Node 20 writes it raw). */
const str = JSON.stringify as (s: string) => string;

/** A number member as pino writes it (a non-finite number is `null`). */
const num = (n: number): string => (Number.isFinite(n) ? `${n}` : 'null');

const BINDINGS = Object.entries(LINE_BASE)
  .map(([k, v]) => `,${str(k)}:${str(v)}`)
  .join('');

/** The access line for `entry` logged at `time` (an ISO 8601 timestamp), newline included. */
export function accessLineText(e: AccessEntry, time: string): string {
  return (
    `{"level":${INFO},"time":"${time}"${BINDINGS},"reqId":${str(e.reqId)},"upstream":${str(e.upstream)}` +
    `${e.method === undefined ? '' : `,"method":${str(e.method)}`},"path":${str(e.path)},"status":${num(e.status)}` +
    `,"requestBytes":${num(e.requestBytes)},"responseBytes":${num(e.responseBytes)},"ms":${num(e.ms)}` +
    `${e.error ? `,"error":${str(e.error)}` : ''},"msg":"request"}\n`
  );
}

/** An access log writing precompiled lines to `stream` (what pino would write there). */
export function directAccessLog(stream: { write(line: string): unknown }, now: () => number = Date.now): AccessLog {
  return (entry) => {
    stream.write(accessLineText(entry, isoTime(now())));
  };
}
