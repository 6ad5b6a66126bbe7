/**
 * One error taxonomy for the whole project.
 *
 * Every failure is a `TresorError` with a stable `code` (SCREAMING_SNAKE, `ERR_<AREA>_<WHAT>`)
 * and a `phase` saying which layer refused. The CLI maps `phase` to an exit code
 * (`src/cli/exit-codes.ts`) and the proxy maps it to an HTTP status
 * (`src/proxy/errors-to-http.ts`): one table each, never ad hoc.
 *
 * Messages follow "expected X, got Y" and name spec fields verbatim (`REPORT_DATA`, `pcrs[0]`).
 * Messages never contain secrets or whole documents.
 */

export type Phase =
  | 'usage' // bad command-line usage or bad configuration
  | 'malformed' // input could not be parsed (parse layer)
  | 'verify' // cryptography or chain of trust failed (verify layer)
  | 'policy' // verified evidence is not acceptable (policy layer)
  | 'fetch' // trust material or evidence could not be obtained
  | 'upstream' // transport to the upstream failed
  | 'internal'; // a bug: never expected

export interface ErrorOptions {
  cause?: unknown;
  /** Structured, non-secret detail (field names, expected/actual digests). */
  detail?: Record<string, unknown>;
}

/**
 * Every failure of the project: a stable `code`, the `phase` (layer) that refused, non-secret
 * `detail`. The library's `AttestationError` classes extend it.
 *
 * @example
 * ```ts
 * import { TresorError } from 'tresor-attest'
 * if (e instanceof TresorError) console.error(e.code, e.phase, e.message)
 * ```
 */
export class TresorError extends Error {
  readonly code: string;
  readonly phase: Phase;
  readonly detail: Record<string, unknown> | undefined;

  constructor(phase: Phase, code: string, message: string, options: ErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.phase = phase;
    this.detail = options.detail;
  }

  toJSON(): { code: string; phase: Phase; message: string; detail?: Record<string, unknown> } {
    return {
      code: this.code,
      phase: this.phase,
      message: this.message,
      ...(this.detail ? { detail: this.detail } : {}),
    };
  }
}

/** Bad flags, unreadable input files, invalid configuration. */
export class UsageError extends TresorError {
  constructor(code: string, message: string, options?: ErrorOptions) {
    super('usage', code, message, options);
  }
}

/** Configuration that failed validation (exit code 2 at start-up). */
export class ConfigError extends TresorError {
  constructor(code: string, message: string, options?: ErrorOptions) {
    super('usage', code, message, options);
  }
}

/** The parse layer refused the bytes. Parsers throw only this. */
export class MalformedError extends TresorError {
  constructor(code: string, message: string, options?: ErrorOptions) {
    super('malformed', code, message, options);
  }
}

/** A signature, certificate chain or binding failed cryptographic verification. */
export class VerificationError extends TresorError {
  constructor(code: string, message: string, options?: ErrorOptions) {
    super('verify', code, message, options);
  }
}

export interface PolicyViolation {
  code: string;
  message: string;
  detail?: Record<string, unknown>;
}

/**
 * Verified evidence that policy does not accept. Carries every violation found
 * (policy layers collect them all); `code` is the first one's.
 */
export class PolicyError extends TresorError {
  readonly violations: readonly PolicyViolation[];

  constructor(violations: readonly PolicyViolation[], options?: ErrorOptions) {
    const first = violations[0];
    if (!first) throw new TypeError('PolicyError needs at least one violation');
    const message =
      violations.length === 1
        ? first.message
        : `${first.message} (and ${violations.length - 1} more: ${violations
            .slice(1)
            .map((v) => v.code)
            .join(', ')})`;
    super('policy', first.code, message, { ...options, detail: { ...first.detail, ...options?.detail } });
    this.violations = violations;
  }

  override toJSON() {
    return { ...super.toJSON(), violations: this.violations };
  }
}

/** Trust material or evidence could not be fetched (network, timeout, size bound). */
export class FetchError extends TresorError {
  constructor(code: string, message: string, options?: ErrorOptions) {
    super('fetch', code, message, options);
  }
}

/** The upstream could not be reached or answered in a way the proxy cannot pass on. */
export class UpstreamError extends TresorError {
  constructor(code: string, message: string, options?: ErrorOptions) {
    super('upstream', code, message, options);
  }
}

export function isTresorError(e: unknown): e is TresorError {
  return e instanceof TresorError;
}

/** Wrap anything thrown into a TresorError without losing it (for logging and exit codes). */
export function toTresorError(e: unknown): TresorError {
  if (e instanceof TresorError) return e;
  const message = e instanceof Error ? e.message : String(e);
  return new TresorError('internal', 'ERR_INTERNAL', message, { cause: e });
}

/** Codes and names of Node, undici and DOM errors that mean "no answer in the time allowed". */
const DEADLINE_CODES = new Set(['ETIMEDOUT', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'TimeoutError']);

/**
 * A foreign error (Node, undici, DOM) as text for one of our messages: its `code` (with
 * `{ code: true }`, when it has one) or its message; a deadline that passed is worded as such,
 * never as "timed out"/"timeout". The openai SDK turns a fetch rejection whose text matches
 * `/timed? ?out/i` into `APIConnectionTimeoutError` and drops it (and its typed cause): our
 * messages must not read as a timeout to it.
 */
export function describeCause(e: unknown, o: { code?: boolean } = {}): string {
  const err = (e ?? {}) as { code?: unknown; name?: unknown; message?: unknown };
  const code = typeof err.code === 'string' ? err.code : undefined;
  const text = (o.code && code) || (typeof err.message === 'string' ? err.message : String(e));
  if (DEADLINE_CODES.has(code ?? '') || DEADLINE_CODES.has(String(err.name)) || /timed? ?out/i.test(text)) return 'no answer within the deadline';
  return text;
}

/** Collects policy violations; throws one PolicyError carrying all of them. */
export class ViolationCollector {
  readonly violations: PolicyViolation[] = [];

  add(code: string, message: string, detail?: Record<string, unknown>): void {
    this.violations.push(detail ? { code, message, detail } : { code, message });
  }

  throwIfAny(): void {
    if (this.violations.length > 0) throw new PolicyError(this.violations);
  }
}
