import { createHash, randomUUID, type Hash } from 'node:crypto';
import type { ExchangeInfo, ExchangeObserver } from '../transport/hooks.js';
import { createTresorExtractor, type ExtractResult, type ReceiptIdField, type TresorExtractor } from './extract.js';
import type { ReceiptJob } from './journal.js';
import { isoTime } from '../log/iso-time.js';

/** An exchange without an extractor (not a JSON or SSE success): nothing found in its body. */
const NOTHING_FOUND: ExtractResult = Object.freeze({});

/** Routes whose successful answers carry a receipt (docs §3.1: completions and transcriptions). */
const RECEIPT_ROUTES = /^\/v1\/(chat\/completions|completions|audio\/transcriptions|audio\/translations)\/?$/;

export function carriesReceipt(method: string, path: string): boolean {
  return method === 'POST' && RECEIPT_ROUTES.test(path.split('?')[0] ?? '');
}

/** What the digest needs of the exchange (the hook's `ExchangeInfo`, kept as given: not copied). */
export type ExchangeStart = Pick<ExchangeInfo, 'upstream' | 'requestId' | 'method' | 'path' | 'tresorHeaders' | 'startedAt'>;

/** Where a router names the receipt: a response header, and (`bodyBlock`) where in the body. */
export interface ReceiptIdPlace {
  idHeader: string;
  /** true = the `tresor` block, `'request_id'` / `'id'` = that top-level field (Pinaivu / NEAR), false = the header only. */
  bodyBlock: boolean | ReceiptIdField;
}

/**
 * Watches one exchange's bytes as they flow: SHA-256 of the request body as forwarded and of
 * the response body as received (for SSE the whole raw stream), and the `tresor` block found by
 * the incremental extractor. Works on the same chunks, never retains or alters them.
 * It is the exchange's observer for the proxy: its per-chunk methods live on the prototype, so an
 * exchange allocates no closures for them and each chunk costs one call.
 */
export class ExchangeDigest implements ExchangeObserver {
  /**
   * The request's SHA-256: open until the request body ends, then its hex digest (an open Hash
   * holds ~0.8 KB with its native context, and a stream outlives its request by far).
   */
  private req: Hash | string = createHash('sha256');
  private readonly res = createHash('sha256');
  private extractor: TresorExtractor | undefined;
  private headerId: string | undefined;
  status = 0;
  stream = false;
  /** The app sent `X-Tresor-Receipt: false`. */
  readonly optedOut: boolean;

  constructor(
    readonly start: ExchangeStart,
    /** The app sent its own Authorization (recorded as `app_key`; the key itself is never kept here). */
    readonly appKey: boolean,
    private readonly where: ReceiptIdPlace,
  ) {
    this.optedOut = (start.tresorHeaders['x-tresor-receipt'] ?? '').trim().toLowerCase() === 'false';
  }

  onRequestChunk(chunk: Uint8Array): void {
    if (typeof this.req === 'string') throw new Error('a request chunk after the end of the request body: the request digest is final');
    this.req.update(chunk);
  }

  onRequestEnd(): void {
    this.requestSha256();
  }

  private requestSha256(): string {
    if (typeof this.req !== 'string') this.req = this.req.digest('hex');
    return this.req;
  }

  onResponseStart(status: number, headers: Readonly<Record<string, string | string[]>>): void {
    this.status = status;
    const ct = String(headers['content-type'] ?? '').toLowerCase();
    this.stream = ct.startsWith('text/event-stream');
    const h = headers[this.where.idHeader];
    this.headerId = typeof h === 'string' ? h : undefined;
    // The `tresor` block is in JSON bodies and in the SSE finish chunk; other formats (a
    // transcription as text) only carry the id in the X-Tresor-Receipt-Id header.
    const block = this.where.bodyBlock;
    if (block && status >= 200 && status < 300 && !this.optedOut && (this.stream || ct.includes('json'))) {
      this.extractor = createTresorExtractor(this.stream ? 'sse' : 'json', block === true ? 'tresor' : block);
    }
  }

  onResponseChunk(chunk: Uint8Array): void {
    this.res.update(chunk);
    this.extractor?.push(chunk);
  }

  /**
   * The journal entry for this exchange. Built member by member in its final order (the journal
   * line's): a conditional spread per optional member cost about 0.6 µs each.
   */
  toJob(outcome: { ok: boolean; error?: string; requestBytes: number; responseBytes: number }, endedAt: Date, attestation?: Record<string, unknown>): ReceiptJob {
    const found = this.extractor?.end() ?? NOTHING_FOUND;
    const block = found.tresor;
    const receipt_id = block?.receipt_id ?? (found.error ? undefined : this.headerId);
    this.extractor = undefined;
    const path = this.start.path;
    const q = path.indexOf('?');
    const job = {
      job: randomUUID(),
      upstream: this.start.upstream,
      request_id: this.start.requestId,
      method: this.start.method,
      route: q < 0 ? path : path.slice(0, q),
      status: this.status,
      started_at: isoTime(this.start.startedAt.getTime()),
      ended_at: isoTime(endedAt.getTime()),
      complete: outcome.ok,
    } as ReceiptJob;
    if (outcome.error) job.error = outcome.error;
    job.opted_out = this.optedOut;
    if (receipt_id !== undefined) job.receipt_id = receipt_id;
    if (block) {
      const { receipt_id: _id, ...tresor } = block;
      job.tresor = tresor;
    }
    if (found.error) job.extract_error = found.error;
    job.request_sha256 = this.requestSha256();
    job.response_sha256 = this.res.digest('hex');
    job.request_bytes = outcome.requestBytes;
    job.response_bytes = outcome.responseBytes;
    job.app_key = this.appKey;
    if (attestation) job.attestation = attestation;
    return job;
  }
}
