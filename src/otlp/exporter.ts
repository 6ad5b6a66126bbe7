import { randomUUID } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { OTLPLogExporter as JsonExporter } from '@opentelemetry/exporter-logs-otlp-http';
import { OTLPLogExporter as ProtoExporter } from '@opentelemetry/exporter-logs-otlp-proto';
import { JsonLogsSerializer, ProtobufLogsSerializer } from '@opentelemetry/otlp-transformer';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { LoggerProvider, type LogRecordExporter, type LogRecordProcessor, type ReadableLogRecord } from '@opentelemetry/sdk-logs';
import type { Logger } from 'pino';
import { GENESIS } from '../audit/format.js';
import { parseRecord } from '../audit/recover.js';
import type { Clock } from '../types.js';
import { VERSION } from '../version.js';
import { Attachments, type Attachment } from './attachments.js';
import { SCOPE, toAttachmentRecord, toLogRecord, type AuditLine } from './records.js';
import type { OtlpSettings } from './settings.js';
import { readAfter, type Cursor, type TailBatch } from './tail.js';
import { writeFileDurably } from '../util/durable-file.js';

/** The exporter's durable position, beside the audit files it reads. */
export const CURSOR_FILE = 'otlp.cursor';
/** The instance id (a UUID made once), when none is configured. */
export const INSTANCE_FILE = 'audit.instance';
const MIN_RETRY_MS = 100;
/** How long a receipt record waits for its JWS to reach the archive before it is sent without it. */
const ARCHIVE_WAIT_MS = 5_000;

export interface OtlpStats {
  exported: number;
  failures: number;
  dropped: number;
  /** Seq of the last record the collector accepted. */
  cursorSeq: number;
  lastError: string | undefined;
}

export interface AuditExporterOptions {
  /** The audit directory (the files are read, never written). */
  dir: string;
  settings: OtlpSettings;
  clock: Clock;
  /** The audit log's durable head seq: nothing after it is sent (not final yet), and the lag is measured to it. */
  headSeq?: () => number;
  logger?: Logger | undefined;
}

/** Collects what the SDK's logger emits, so each batch is exported (and retried) as one request. */
class Collect implements LogRecordProcessor {
  records: ReadableLogRecord[] = [];
  onEmit(r: ReadableLogRecord): void {
    this.records.push(r);
  }
  forceFlush(): Promise<void> {
    return Promise.resolve();
  }
  shutdown(): Promise<void> {
    return Promise.resolve();
  }
}

/**
 * Ships the audit trail to an OpenTelemetry collector (docs/wire.md §7.1). It tails the audit files
 * from a durable cursor (`otlp.cursor`), sends a batch with the official OTLP/HTTP exporter, and
 * moves the cursor only once the collector accepted the batch: at-least-once, across restarts and
 * kill -9. While the collector is unreachable the backlog stays in the audit files (bounded by
 * audit retention; records pruned before they were sent are counted as dropped) and the batch is
 * retried with a growing wait. It runs on its own timer and never touches the request path.
 */
export class AuditExporter {
  readonly stats: OtlpStats = { exported: 0, failures: 0, dropped: 0, cursorSeq: 0, lastError: undefined };
  private cursor: Cursor = { file: '', offset: 0, seq: 0, hash: GENESIS };
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  private retryMs = MIN_RETRY_MS;
  private readonly collect = new Collect();
  private readonly otel: ReturnType<LoggerProvider['getLogger']>;
  private readonly exporter: LogRecordExporter;
  /** Encodes a request as the exporter will (the same package and version), to measure it before it is sent. */
  private readonly serializer: typeof ProtobufLogsSerializer;
  private readonly attachments: Attachments;

  private constructor(private readonly o: AuditExporterOptions, readonly instanceId: string) {
    const provider = new LoggerProvider({ resource: resourceFromAttributes({ 'service.version': VERSION, 'service.instance.id': instanceId, ...o.settings.resource }), processors: [this.collect] });
    this.otel = provider.getLogger(SCOPE, VERSION);
    this.attachments = new Attachments(o.dir);
    const config = { url: o.settings.url, headers: o.settings.headers, timeoutMillis: o.settings.timeoutMs };
    this.exporter = o.settings.protocol === 'http/json' ? new JsonExporter(config) : new ProtoExporter(config);
    this.serializer = o.settings.protocol === 'http/json' ? JsonLogsSerializer : ProtobufLogsSerializer;
  }

  static async start(o: AuditExporterOptions): Promise<AuditExporter> {
    await mkdir(o.dir, { recursive: true, mode: 0o700 });
    const e = new AuditExporter(o, o.settings.instanceId ?? (await instanceId(o.dir)));
    e.cursor = (await readCursor(o.dir)) ?? e.cursor;
    e.stats.cursorSeq = e.cursor.seq;
    o.logger?.info({ event: 'otlp.start', url: o.settings.url, protocol: o.settings.protocol, instance: e.instanceId, from_seq: e.cursor.seq + 1 }, `exporting the audit trail to ${o.settings.url} (${o.settings.protocol}) from seq ${e.cursor.seq + 1}`);
    e.schedule(0);
    return e;
  }

  /** Records written and not yet accepted by the collector. */
  get lag(): number {
    return Math.max(0, (this.o.headSeq?.() ?? this.cursor.seq) - this.cursor.seq);
  }

  /** Export once more what is there (bounded by `timeoutMs`), then stop; what is left is sent by the next start. */
  async stop(timeoutMs = 0): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
    if (timeoutMs > 0) await Promise.race([this.pass(), new Promise((r) => setTimeout(r, timeoutMs).unref())]).catch(() => undefined);
    await this.exporter.shutdown().catch(() => undefined);
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.pass().then(
        (more) => this.schedule(more ? 0 : this.o.settings.intervalMs),
        (e: unknown) => this.failed(e),
      );
    }, ms);
    this.timer.unref();
  }

  private failed(e: unknown): void {
    this.stats.failures += 1;
    this.stats.lastError = e instanceof Error ? e.message : String(e);
    this.o.logger?.warn({ event: 'otlp.export_failed', url: this.o.settings.url, lag: this.lag, retry_ms: this.retryMs, err: this.stats.lastError }, `OTLP export failed (${this.stats.lastError}): ${this.lag} record(s) wait in the audit files, next try in ${this.retryMs} ms`);
    const wait = this.retryMs;
    this.retryMs = Math.min(this.retryMs * 2, this.o.settings.retryMaxMs);
    this.schedule(wait);
  }

  /** Send one batch; true when there may be more right away. */
  private async pass(): Promise<boolean> {
    const built = await this.build(this.o.settings.batchRecords);
    if (!built) return false;
    const { batch, blobs, records } = built;
    await new Promise<void>((resolve, reject) => {
      this.exporter.export(records, (r) => (r.code === 0 ? resolve() : reject(r.error ?? new Error('export failed'))));
    });
    this.stats.exported += batch.lines.length; // audit records: the evidence and receipts sent with them are not counted
    this.attachments.accepted(blobs);
    if (this.stats.failures > 0 && this.retryMs > MIN_RETRY_MS) this.o.logger?.info({ event: 'otlp.recovered', url: this.o.settings.url }, 'OTLP export works again');
    this.retryMs = MIN_RETRY_MS;
    await this.advance(batch);
    return batch.lines.length >= this.o.settings.batchRecords || built.cut;
  }

  /**
   * The next request: up to `max` audit records after the cursor with what they name, encoded no
   * larger than `otlp.max_request_bytes`. A larger one is built again from fewer records (read
   * again, so the cursor and the drops counted stay those of the records sent). One record over the
   * limit with its attachments is sent alone, with a warning (a collector that refuses it holds the
   * export at that record, which its failures and the lag show). Undefined: nothing to send now.
   */
  private async build(max: number): Promise<{ batch: TailBatch; blobs: Set<string>; records: ReadableLogRecord[]; cut: boolean } | undefined> {
    const limit = this.o.settings.maxRequestBytes;
    for (let cut = false; ; cut = true) {
      const batch = await readAfter(this.o.dir, this.cursor, max, this.o.headSeq?.() ?? Infinity);
      if (batch.lines.length === 0) {
        if (batch.next.file !== this.cursor.file || batch.next.offset !== this.cursor.offset) await this.advance(batch);
        return undefined;
      }
      const blobs = await this.emit(batch.lines, new Date(this.o.clock().getTime()));
      const records = this.collect.records.splice(0);
      if (!blobs) return undefined; // a receipt's archive line is still being written: the next pass sends the batch
      const bytes = this.serializer.serializeRequest(records)?.length ?? 0;
      if (bytes <= limit) return { batch, blobs, records, cut };
      if (batch.lines.length === 1) {
        const seq = (batch.lines[0] as AuditLine).seq;
        this.o.logger?.warn({ event: 'otlp.request_over_limit', seq, bytes, limit }, `audit record ${seq} with what it names encodes to ${bytes} bytes, over otlp.max_request_bytes (${limit}): sent alone`);
        return { batch, blobs, records, cut };
      }
      // Fewer records, in proportion to what fits (at least one fewer).
      max = Math.max(1, Math.min(batch.lines.length - 1, Math.floor((batch.lines.length * limit) / bytes)));
    }
  }

  /**
   * Emit the batch's records, each after what it names (docs/wire.md §7.1): an `attestation`
   * record's evidence blobs not sent yet, a receipt record's archived JWS. Returns the evidence
   * blob ids emitted (remembered once the collector accepted them), or undefined (nothing emitted)
   * while a receipt record younger than ARCHIVE_WAIT_MS names a JWS not in the archive yet (the
   * archive and the log are written side by side); an older one is sent without (pruned, or never
   * written: the verifier reports it).
   */
  private async emit(lines: readonly AuditLine[], observed: Date): Promise<Set<string> | undefined> {
    const blobs = new Set<string>();
    const named = lines.map((l) => parseRecord(l.text));
    const jwss = await this.attachments.receipts(new Set(named.map((r) => r?.receipt_jws_sha256).filter((s): s is string => typeof s === 'string')));
    const pending = (l: AuditLine, r: Record<string, unknown> | undefined) => typeof r?.receipt_jws_sha256 === 'string' && !jwss.has(r.receipt_jws_sha256) && observed.getTime() - Date.parse(l.time) < ARCHIVE_WAIT_MS;
    if (lines.some((l, i) => pending(l, named[i]))) return undefined;
    for (const [i, line] of lines.entries()) {
      const rec = named[i];
      const attached: Attachment[] = line.type === 'attestation' ? await this.attachments.evidence(rec?.evidence, blobs) : [];
      const sha = rec?.receipt_jws_sha256;
      const jws = typeof sha === 'string' ? jwss.get(sha) : undefined;
      if (jws !== undefined) attached.push({ kind: 'receipt', sha256: sha as string, jws });
      for (const a of attached) this.otel.emit(toAttachmentRecord(a, line, this.instanceId, observed));
      this.otel.emit(toLogRecord(line, this.instanceId, observed));
    }
    return blobs;
  }

  /** Move the cursor past a batch the collector accepted (or past files that are gone), and count what was lost. */
  private async advance(batch: TailBatch): Promise<void> {
    await writeFileDurably(join(this.o.dir, CURSOR_FILE), JSON.stringify(batch.next));
    if (batch.dropped > 0) {
      this.stats.dropped += batch.dropped;
      this.o.logger?.error({ event: 'otlp.dropped', count: batch.dropped, after_seq: this.cursor.seq }, `${batch.dropped} audit record(s) after seq ${this.cursor.seq} were gone before they could be exported`);
    }
    this.cursor = batch.next;
    this.stats.cursorSeq = batch.next.seq;
  }
}

async function readCursor(dir: string): Promise<Cursor | undefined> {
  const text = await readFile(join(dir, CURSOR_FILE), 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  let c: Partial<Cursor>;
  try {
    c = JSON.parse(text) as Partial<Cursor>;
  } catch {
    return undefined; // written by rename, so never half; unreadable anyway: start over (at-least-once)
  }
  return typeof c.file === 'string' && typeof c.offset === 'number' && typeof c.seq === 'number' && typeof c.hash === 'string' ? (c as Cursor) : undefined;
}

async function instanceId(dir: string): Promise<string> {
  const path = join(dir, INSTANCE_FILE);
  const existing = (await readFile(path, 'utf8').catch(() => '')).trim();
  if (existing) return existing;
  const id = randomUUID();
  await writeFileDurably(path, `${id}\n`);
  return id;
}
