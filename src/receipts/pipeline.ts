import { statfsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { jwsSha256, ReceiptArchive } from '../audit/archive.js';
import { dayOf, FILE_RE } from '../audit/format.js';
import type { CheckpointSigner } from '../audit/checkpoint.js';
import { AuditHealth, AuditUnavailableError } from '../audit/health.js';
import { AuditLog } from '../audit/log.js';
import { EvidenceStore, pinDocument, pruneEvidence } from '../audit/evidence.js';
import { auditAttestation } from '../attestation/identity.js';
import type { PinEvent } from '../attestation/profile.js';
import { DEFAULT_RETRY_MS } from '../util/appender.js';
import { parseRecord } from '../audit/recover.js';
import { VerificationError } from '../errors/index.js';
import type { ExchangeDecision, ExchangeInfo, ExchangeObserver, ExchangeOutcome } from '../transport/hooks.js';
import type { Clock } from '../types.js';
import type { ReceiptFetchPolicy, UpstreamGet } from './fetch.js';
import { ReceiptJournal, type ReceiptJob } from './journal.js';
import { MemoryAuditLog, MemoryJournal } from './memory.js';
import { carriesReceipt, ExchangeDigest } from './observer.js';
import type { Semaphore, TokenBucket } from './rate.js';
import { recordFor, recordWithout, type FinalVerdict, type ReceiptFormat, type ReceiptRecord, type RecordDeps } from './record.js';
import { summaryJson, VerdictStore, type VerdictSummary } from './verdicts.js';

export type ReceiptsMode = 'audit' | 'strict' | 'off';

/** What the pipeline needs from one upstream. */
export interface UpstreamReceipts {
  name: string;
  mode: ReceiptsMode;
  /** The upstream's configured key (wins over the app's). */
  authorization: string | undefined;
  get: UpstreamGet;
  /** The router's receipt format (Tresor JWS, ACI document). */
  format: ReceiptFormat;
  /** Response header that carries the receipt id (Tresor: a fallback to the body's `tresor` block; ACI: the only source). */
  idHeader: string;
  /** Look for the id in the body's `tresor` block (Tresor: true) or its top-level `request_id` (Pinaivu). */
  bodyBlock: boolean | 'request_id' | 'id';
  /**
   * Summary of the attestation behind the exchange, for the record: the pin of the connection it
   * went out on (`socket`, when noted), else the pin in force. With `since` (when the exchange
   * started): if that pin lapsed while the exchange was in flight, when and why it lapsed.
   */
  attestation(since?: Date, socket?: TLSSocket): Record<string, unknown> | undefined;
  fetchPolicy: Partial<ReceiptFetchPolicy>;
  bucket: TokenBucket;
  concurrency: Semaphore;
  maxPending: number;
  /** Audit mode only: wait this long after an exchange before fetching its receipt (default 0). */
  firstFetchDelayMs?: number;
}

export interface PipelineOptions {
  /** Where the journal lives; undefined keeps the journal and the audit log in memory (library without a state dir). */
  stateDir: string | undefined;
  audit: {
    dir: string;
    maxFileBytes: number;
    retentionFiles: number;
    archiveReceipts: boolean;
    /** Archive each pin's evidence (evidence/<sha256>) before its attestation record (default false here; the config's default is true). */
    archiveEvidence?: boolean;
    commitWindowMs?: number;
    /** While records cannot be made durable: refuse new exchanges (fail, the default) or serve them and count them (serve). Strict mode always refuses. */
    diskFullAction?: 'fail' | 'serve';
    /** Wait between tries of a failed commit (default 1000 ms). */
    retryMs?: number;
    signer?: CheckpointSigner | undefined;
    checkpointIntervalMs?: number;
  };
  clock: Clock;
  logger: Logger;
  upstreams: readonly UpstreamReceipts[];
  sleep?: (ms: number) => Promise<void>;
  /** How long the end of each answer waited for its job to be journaled (the latency durability adds). */
  onJournaled?: (upstream: string, seconds: number) => void;
  /** Told each final verdict, once it is recorded. */
  onVerdict?: (v: VerdictSummary) => void;
}

/** What the pipeline needs of the journal and the audit log: the files, or memory (src/receipts/memory.ts). */
type Journal = Pick<ReceiptJournal, 'size' | 'add' | 'done' | 'close' | 'held'>;
type Audit = Pick<AuditLog, 'append' | 'close' | 'held' | 'head' | 'recovered' | 'lastCheckpointSeq'>;

/** A strict-mode refusal: the failing check's code, as a 502 to the app. */
export class ReceiptRejected extends VerificationError {
  constructor(code: string, message: string) {
    super(code, message);
    this.name = 'ReceiptRejected';
  }
}

/**
 * How long an audit record (and its archived receipt) nobody is waiting for may wait for others to
 * share one fdatasync per file. Each fdatasync cost about 0.5 ms of CPU on the bench machine, and
 * a completion made three (journal, archive, audit log). The journal entry, which the app's
 * response waits for, is never delayed; a strict-mode record commits at once.
 */
export const AUDIT_COMMIT_WINDOW_MS = 20;

/** The response header (or trailer) in which the daemon echoes the receipt id to the app. */
export const RECEIPT_ID_HEADER = 'x-tresor-receipt-id';

class PipelineClosed extends Error {
  constructor() {
    super('the receipt pipeline is closed: the job stays journaled');
  }
}

const realSleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());

/** The receipt id, when it is only in the body, is echoed as a trailer of a chunked answer. */
const RECEIPT_TRAILERS: readonly string[] = [RECEIPT_ID_HEADER];

/**
 * One observed exchange: its digests and extractor (ExchangeDigest), and what its end needs. Its
 * methods are on the prototype, not closures made per exchange (a stream keeps its observer for as
 * long as it is open).
 */
export class ReceiptExchange extends ExchangeDigest {
  /** Strict mode (and not opted out): the end of the answer waits for the verdict. */
  readonly hold: boolean;
  readonly trailers = RECEIPT_TRAILERS;

  constructor(
    private readonly pipeline: ReceiptPipeline,
    readonly u: UpstreamReceipts,
    override readonly start: ExchangeInfo,
  ) {
    super(start, start.authorization !== undefined && u.authorization === undefined, u);
    this.hold = u.mode === 'strict' && !this.optedOut;
  }

  onEnd(outcome: ExchangeOutcome): Promise<ExchangeDecision | undefined> {
    return this.pipeline.endExchange(this, outcome);
  }
}

/**
 * The receipt pipeline: for every completion, a job is journaled before the app sees the end of
 * its response; a bounded worker pool per upstream fetches and verifies the receipt, archives
 * the JWS, appends one audit record and marks the job done. After a crash, pending jobs are
 * finished on start, skipping any whose record already reached the audit log: nothing lost,
 * nothing recorded twice.
 */
export class ReceiptPipeline {
  readonly verdicts = new VerdictStore();
  private readonly upstreams = new Map<string, UpstreamReceipts>();
  /** App-supplied keys of pending jobs: memory only. */
  private readonly appKeys = new Map<string, string>();
  private readonly running = new Set<Promise<unknown>>();
  /** Pins being recorded (until their record is durable), by evidence id: what names one is written after it. */
  private readonly pinWrites = new Map<string, Promise<void>>();
  private closed = false;
  /** When this run last made a record durable (for /status). */
  private lastRecordAt: Date | undefined;
  readonly counters = { journaled: 0, recorded: 0, verified: 0, failed: 0, missing: 0, opted_out: 0, unverifiable: 0, dropped: 0 };
  /** Verdicts recorded, per upstream (metrics). */
  readonly verdictsByUpstream = new Map<string, Partial<Record<FinalVerdict, number>>>();

  private constructor(
    private readonly o: PipelineOptions,
    private readonly journal: Journal,
    readonly audit: Audit,
    private readonly archive: ReceiptArchive | undefined,
    /** Whether records can be made durable now (log, archive, journal). */
    readonly health: AuditHealth,
    private readonly evidence: EvidenceStore | undefined = undefined,
  ) {
    for (const u of o.upstreams) this.upstreams.set(u.name, u);
  }

  static async open(o: PipelineOptions): Promise<ReceiptPipeline> {
    const health = new AuditHealth({ clock: o.clock, logger: o.logger });
    if (o.stateDir === undefined) return new ReceiptPipeline(o, new MemoryJournal(), new MemoryAuditLog(), undefined, health);
    // Records nobody waits for (audit mode) share fdatasyncs over a short window; strict-mode ones commit at once.
    const commitWindowMs = o.audit.commitWindowMs ?? AUDIT_COMMIT_WINDOW_MS;
    const retry = o.audit.retryMs !== undefined ? { retryMs: o.audit.retryMs } : {};
    const audit = await AuditLog.open({
      dir: o.audit.dir,
      clock: o.clock,
      maxFileBytes: o.audit.maxFileBytes,
      retentionFiles: o.audit.retentionFiles,
      commitWindowMs,
      health,
      logger: o.logger,
      signer: o.audit.signer,
      ...retry,
      ...(o.audit.checkpointIntervalMs ? { checkpointIntervalMs: o.audit.checkpointIntervalMs } : {}),
      ...(o.audit.archiveEvidence ? { onPruned: () => void pruneEvidenceLogged(o) } : {}),
    });
    logRecovery(o, audit);
    const signer = o.audit.signer;
    if (signer) o.logger.info({ public_key_sha256: signer.keySha256, public_key: signer.publicPem, event: 'audit.signing_key' }, `audit checkpoints are signed with Ed25519 key sha256:${signer.keySha256} (public key in ${join(o.audit.dir, 'audit.pub')})`);
    const onRecreated = (path: string) => o.logger.error({ path, event: 'audit.recreated' }, `${path} (or its directory) was removed while open: recreated, the held entries written to it`);
    const durability = { health, onRecreated, ...retry };
    // A job's entry commits at once (the answer waits for it); a `done` nobody waits for shares a later commit.
    const { journal, pending } = await ReceiptJournal.open(join(o.stateDir, 'receipts'), { ...durability, commitWindowMs });
    const archive = o.audit.archiveReceipts ? new ReceiptArchive(o.audit.dir, { commitWindowMs, ...durability }) : undefined;
    const p = new ReceiptPipeline(o, journal, audit, archive, health, o.audit.archiveEvidence ? new EvidenceStore(o.audit.dir) : undefined);
    const recorded = await recordedJobs(o.audit.dir, pending);
    for (const job of pending) {
      if (recorded.has(job.job)) await journal.done(job.job);
      else p.schedule(job);
    }
    if (pending.length > 0) o.logger.info({ pending: pending.length, alreadyRecorded: recorded.size }, 'resuming receipt jobs journaled before the last stop');
    return p;
  }

  get pending(): number {
    return this.journal.size;
  }

  /** Entries of the audit trail (records, receipts, journal entries) held in memory until they can be made durable. */
  get held(): number {
    return this.audit.held + (this.archive?.held ?? 0) + this.journal.held;
  }

  /** The audit trail's health for /status and metrics: never a record, never a key's secret half. */
  auditStatus(): Record<string, unknown> {
    const f = this.health.failure;
    const signer = this.o.audit.signer;
    return {
      dir: this.o.audit.dir,
      writable: f === undefined,
      ...(f ? { failure: f } : {}),
      held: this.held,
      disk_full_action: this.o.audit.diskFullAction ?? 'fail',
      served_unrecorded: this.health.servedUnrecorded,
      write_failures: { ...this.health.failures },
      head_seq: this.audit.head.seq,
      head_hash: this.audit.head.hash,
      last_record_at: this.lastRecordAt?.toISOString() ?? null,
      disk: this.o.stateDir === undefined ? null : diskUse(this.o.audit.dir),
      moved_aside_at_start: this.audit.recovered.movedAside,
      ...(this.audit.recovered.gap ? { gap_at_start: this.audit.recovered.gap.reason } : {}),
      signing: signer ? { public_key_sha256: signer.keySha256, public_key: signer.publicPem, last_checkpoint_seq: this.audit.lastCheckpointSeq } : null,
    };
  }

  /**
   * A verification succeeded: archive its evidence durably (the parts, then the pin document that
   * names them), then append its `attestation` record (docs/wire.md §7.2). Returns the evidence id
   * at once (the pin keeps it and names it in its receipt records, which are written after this
   * record); undefined when the evidence is not archived (archive_evidence false, memory mode, or
   * a profile that captures none yet). The same pin seen twice (concurrent connections) is
   * recorded once.
   */
  recordPin(p: PinEvent): string | undefined {
    if (this.closed) return undefined;
    const id = p.identity;
    const pin = id.evidence && this.evidence ? pinDocument(id.evidence, { upstream: p.upstream, verifiedAt: id.verifiedAt, testRoots: p.testRoots }) : undefined;
    if (pin && this.pinWrites.has(pin.id)) return pin.id;
    const summary = auditAttestation(pin ? { ...id, evidenceId: pin.id } : id, { mode: p.mode, testRoots: p.testRoots });
    const record = { type: 'attestation', upstream: p.upstream, profile: p.profile, reason: p.reason, verified_at: id.verifiedAt, expires_at: id.expiresAt, ...summary, evidence: pin?.id ?? null };
    const write = (async () => {
      if (pin) await this.untilWritten('evidence', () => (this.evidence as EvidenceStore).putPin(pin));
      // Rare (one per pin) and awaited by the journal entries of the exchanges made under it: at once.
      await this.audit.append(record);
    })();
    const done = write.catch((e: unknown) => {
      this.o.logger.error({ err: { message: (e as Error).message }, upstream: p.upstream, event: 'audit.pin_unrecorded' }, 'the attestation record of a pin could not be written');
    });
    if (pin) {
      this.pinWrites.set(pin.id, done);
      if (this.pinWrites.size > 256) this.pinWrites.delete(this.pinWrites.keys().next().value as string);
    }
    this.running.add(done);
    void done.finally(() => {
      this.running.delete(done);
      // Durable (or given up): nothing need wait for it any more, and the hot path looks up nothing.
      if (pin && this.pinWrites.get(pin.id) === done) this.pinWrites.delete(pin.id);
    });
    return pin?.id;
  }

  /** Run `f` until it works (reported to health while it fails, retried), or the pipeline closes. */
  private async untilWritten(source: string, f: () => Promise<unknown>): Promise<void> {
    for (;;) {
      try {
        await f();
        this.health.ok(source, 1);
        return;
      } catch (e) {
        if (this.closed) throw e;
        this.health.fail(source, e, 1);
        await (this.o.sleep ?? realSleep)(this.o.audit.retryMs ?? DEFAULT_RETRY_MS);
      }
    }
  }

  /**
   * Why a new exchange of `upstream` must be refused now, if it must: records cannot be made durable
   * and audit.disk_full_action is fail (or the upstream's receipts are strict). `method`/`path`
   * narrow it to the exchanges that carry a receipt.
   */
  refusal(upstream: string, method?: string, path?: string): AuditUnavailableError | undefined {
    const f = this.health.failure;
    const u = this.upstreams.get(upstream);
    if (!f || !u || u.mode === 'off' || (method !== undefined && !carriesReceipt(method, path ?? ''))) return undefined;
    if (u.mode !== 'strict' && this.o.audit.diskFullAction === 'serve') return undefined;
    return new AuditUnavailableError(f);
  }

  /** The daemon's onExchange hook: one object per exchange (see ReceiptExchange). */
  observe(info: ExchangeInfo): ExchangeObserver | undefined {
    const u = this.upstreams.get(info.upstream);
    if (!u || u.mode === 'off' || this.closed || !carriesReceipt(info.method, info.path)) return undefined;
    return new ReceiptExchange(this, u, info);
  }

  /**
   * The end of an observed exchange (its `onEnd`): journal the job durably before the app sees the
   * end of the answer; in strict mode, wait for the verdict.
   */
  async endExchange(x: ReceiptExchange, outcome: ExchangeOutcome): Promise<ExchangeDecision | undefined> {
    // Error answers carry no receipt: nothing to record.
    if (x.status < 200 || x.status >= 300) return undefined;
    const { u, start: info } = x;
    const t0 = process.hrtime.bigint();
    const job = x.toJob(outcome, this.o.clock(), u.attestation(info.startedAt, info.connection?.socket));
    if (job.app_key && info.authorization) this.appKeys.set(job.job, info.authorization);
    let verdict: Promise<ReceiptRecord> | ReceiptRecord;
    if (this.journal.size >= u.maxPending) verdict = await this.drop(job, u);
    else {
      const journaled = this.journaled(job, u);
      if (journaled) await journaled;
      verdict = this.start(job);
    }
    this.o.onJournaled?.(u.name, Number(process.hrtime.bigint() - t0) / 1e9);
    const echo = typeof job.receipt_id === 'string' ? { trailers: { [RECEIPT_ID_HEADER]: job.receipt_id } } : undefined;
    // A failed verdict is logged and handled where the job runs (schedule): nothing to catch here.
    if (!x.hold || !outcome.ok) return echo;
    const v = await verdict;
    if (v.verdict === 'verified') return { ...echo, headers: { 'x-tresor-receipt-verdict': 'verified', ...(v.receipt_id ? { [RECEIPT_ID_HEADER]: v.receipt_id } : {}) } };
    return { reject: new ReceiptRejected(v.code ?? 'ERR_RECEIPT_NOT_VERIFIED', `receipts.mode strict: the receipt is ${v.verdict}${v.detail ? `: ${v.detail}` : ''}`) };
  }

  /** A router that never answers cannot make us queue without bound: the job is recorded (not fetched) and dropped. */
  private async drop(job: ReceiptJob, u: UpstreamReceipts): Promise<ReceiptRecord> {
    this.counters.dropped++;
    const record = recordWithout(job, 'missing', 'ERR_RECEIPT_QUEUE_FULL', `more than ${u.maxPending} receipts pending: not fetched`);
    await this.write(record, undefined);
    return record;
  }

  /**
   * Journal the job: what the end of the answer waits for (the entry durable), or undefined when it
   * need not wait (disk_full_action: serve while records cannot be made durable: answer now and count
   * it; the entry is written once writing works again).
   */
  private journaled(job: ReceiptJob, u: UpstreamReceipts): Promise<void> | undefined {
    // A job names its pin's evidence: its journal entry waits for the pin's attestation record, so that
    // after a crash no resumed job names a pin whose record was never written.
    const pin = job.attestation?.evidence;
    const pinRecorded = typeof pin === 'string' ? this.pinWrites.get(pin) : undefined;
    const journaled = pinRecorded ? pinRecorded.then(() => this.journal.add(job)) : this.journal.add(job);
    if (!(this.health.failure && u.mode !== 'strict' && this.o.audit.diskFullAction === 'serve')) return journaled;
    this.health.servedUnrecorded++;
    void journaled.catch(() => undefined);
    return undefined;
  }

  /** A journaled job: pending in the verdict store, then started; its verdict. */
  private start(job: ReceiptJob): Promise<ReceiptRecord> {
    this.counters.journaled++;
    const pending: VerdictSummary = { status: 'pending', request_id: job.request_id, upstream: job.upstream };
    if (typeof job.receipt_id === 'string') pending.receipt_id = job.receipt_id;
    this.verdicts.set(pending);
    return this.schedule(job);
  }

  /**
   * Start the job; its verdict. A job waits here for its fetch slot, 1,000 at once at 1,000 streams
   * (long enough to be promoted to V8's old space): one async frame and its promise per job, the
   * job itself (which the journal holds anyway) and a resolver in the semaphore, no closures.
   */
  private schedule(job: ReceiptJob): Promise<ReceiptRecord> {
    const run = this.runJob(job);
    const untrack = () => void this.running.delete(run);
    this.running.add(run);
    // Handled here (a failure is logged by runJob): whoever is given the verdict need not catch it.
    void run.then(untrack, untrack);
    return run;
  }

  /** Fetch and check the receipt, then record it durably and mark the job done; its record. */
  private async runJob(job: ReceiptJob): Promise<ReceiptRecord> {
    try {
      const u = this.upstreams.get(job.upstream);
      let checked: Awaited<ReturnType<typeof recordFor>>;
      if (!u) checked = { record: recordWithout(job, 'unverifiable', 'ERR_RECEIPT_UPSTREAM_GONE', `upstream ${job.upstream} is no longer configured: the receipt cannot be fetched`) };
      else {
        // Audit mode: start a little after the exchange, so that the fetch, the check and the record do
        // not compete with the app's next request, which typically follows at once. Nobody waits for
        // this verdict; strict mode (an answer is held for it) starts at once.
        if (u.mode !== 'strict' && (u.firstFetchDelayMs ?? 0) > 0) {
          await (this.o.sleep ?? realSleep)(u.firstFetchDelayMs as number);
          if (this.closed) throw new PipelineClosed();
        }
        // The slot (receipts.concurrency) bounds the fetches and checks at the router, not the
        // commits: a record waiting for its commit window does not hold it, so the receipts of a
        // burst are fetched together and share commits instead of going through 16 at a time, one
        // audit, archive and journal sync per 16. The jobs are bounded by receipts.max_pending.
        const slot = u.concurrency.acquire();
        if (slot) await slot; // a free slot is taken at once: no turn of the microtask queue
        try {
          checked = await recordFor(job, this.recordDeps(u, u.authorization ?? this.appKeys.get(job.job)));
        } finally {
          u.concurrency.release();
        }
      }
      // Recorded, then marked done, here rather than in a method of its own: an async frame and two
      // promises fewer per receipt.
      if (this.closed) throw new PipelineClosed();
      // Someone waits for a strict-mode verdict (the held answer): no commit window for it.
      const urgent = u?.mode === 'strict';
      await this.write(checked.record, checked.jws, urgent, checked.verbatim);
      await this.journal.done(job.job, { urgent });
      this.appKeys.delete(job.job);
      return checked.record;
    } catch (e) {
      // Stopped mid-job, or a disk failure: the job stays journaled and is finished on the next start.
      if (e instanceof PipelineClosed) this.o.logger.info({ job: job.job }, 'receipt job left pending at shutdown; it resumes on the next start');
      else this.o.logger.error({ err: { message: (e as Error).message }, job: job.job }, 'receipt job failed to record; it stays pending');
      throw e;
    }
  }

  private recordDeps(u: UpstreamReceipts, authorization: string | undefined): RecordDeps {
    return {
      fetch: { get: u.get, clock: this.o.clock, sleep: this.o.sleep ?? realSleep, beforeAttempt: () => u.bucket.take(), policy: u.fetchPolicy },
      authorization,
      format: u.format,
    };
  }

  /** `verbatim`: the parse's proof that `jws` needs no escaping in the archive line (util/jws.ts). */
  private async write(record: ReceiptRecord, jws: string | undefined, urgent = true, verbatim?: string): Promise<void> {
    // Every pin being recorded goes first in the chain, not only the one this record names: a receipt
    // issued after a key rotation names its connection's (older) pin but attests the key pinned since,
    // which `tresor-verify audit` accepts only from a pin recorded before the receipt (docs/wire.md §7.2).
    if (this.pinWrites.size > 0) await Promise.all(this.pinWrites.values());
    // The archive and the log are synced side by side; the record names the JWS by its hash.
    let archived: Promise<unknown> = Promise.resolve();
    if (jws !== undefined && this.archive) {
      record.receipt_jws_sha256 = jwsSha256(jws);
      archived = this.archive.put(jws, this.o.clock(), record.receipt_jws_sha256, { urgent, verbatim });
    }
    const fields = record as unknown as Record<string, unknown>;
    const [{ seq, line }] = await Promise.all([this.audit.append(fields, { urgent }), archived]);
    this.lastRecordAt = this.o.clock();
    this.counters.recorded++;
    this.counters[record.verdict]++;
    const byUpstream = this.verdictsByUpstream.get(record.upstream) ?? {};
    byUpstream[record.verdict] = (byUpstream[record.verdict] ?? 0) + 1;
    this.verdictsByUpstream.set(record.upstream, byUpstream);
    const summary: VerdictSummary = {
      status: 'done',
      request_id: record.request_id,
      upstream: record.upstream,
      ...(record.receipt_id ? { receipt_id: record.receipt_id } : {}),
      verdict: record.verdict,
      ...(record.code ? { code: record.code } : {}),
      ...(record.detail ? { detail: record.detail } : {}),
      checks: record.checks,
      seq,
    };
    this.verdicts.set(summary, summaryJson(summary, fields, line));
    this.o.onVerdict?.(summary);
    // Every verdict is in the audit log; the operator's log gets the ones that need a look.
    const level = record.verdict === 'verified' || record.verdict === 'opted_out' ? 'debug' : 'warn';
    this.o.logger[level]({ upstream: record.upstream, reqId: record.request_id, receiptId: record.receipt_id, verdict: record.verdict, code: record.code, seq }, 'receipt');
  }

  /** Stop: jobs still running stay journaled and resume on the next start. */
  async close(graceMs = 0): Promise<void> {
    const deadline = Date.now() + graceMs;
    // A ref'd timer: the wait itself keeps the process alive. With only unref'd timers left (a job
    // sleeping before its fetch, or between retries) the event loop would empty and the process
    // exit mid-shutdown, before its last log line.
    while (this.running.size > 0 && Date.now() < deadline) await Promise.race([...this.running, new Promise((r) => setTimeout(r, 50))]).catch(() => undefined);
    // Pins already verified get their records (their evidence write is short, or gives up now that we close).
    const pins = [...this.pinWrites.values()];
    this.closed = true;
    await Promise.all(pins);
    await this.journal.close();
    await this.archive?.close();
    await this.audit.close();
  }
}

/** Space on the audit log's filesystem (one statfs call), or null when it cannot be read (the directory removed). */
function diskUse(dir: string): { free_bytes: number; total_bytes: number; used_percent: number } | null {
  try {
    const s = statfsSync(dir);
    const total = s.blocks * s.bsize;
    const free = s.bavail * s.bsize;
    return { free_bytes: free, total_bytes: total, used_percent: total > 0 ? Math.round(((total - free) / total) * 1000) / 10 : 0 };
  } catch {
    return null;
  }
}

/** Retention removed audit files: remove the evidence only they named (logged; a failure is retried at the next pruning). */
async function pruneEvidenceLogged(o: PipelineOptions): Promise<void> {
  try {
    const removed = await pruneEvidence(o.audit.dir, o.clock());
    if (removed > 0) o.logger.info({ removed, event: 'audit.evidence_pruned' }, `evidence archive: ${removed} blob(s) no remaining audit record names removed`);
  } catch (e) {
    o.logger.warn({ err: { message: (e as Error).message }, event: 'audit.evidence_prune_failed' }, 'evidence archive: pruning failed; retried at the next rotation');
  }
}

/** Tails moved aside at open are an operator's business: say so, with their sizes. */
function logRecovery(o: PipelineOptions, audit: AuditLog): void {
  const r = audit.recovered;
  if (r.movedAside.length > 0) {
    o.logger.warn({ movedAside: r.movedAside, bytes: r.tornBytes, event: 'audit.tail_moved_aside' }, `audit log: ${r.tornBytes} bytes at the end (a write cut short by a crash, or a malformed line) moved aside to <file>.torn; their jobs are re-run`);
  }
}

/**
 * Job ids of `pending` that already have a record in the audit log (crash after the write). Only
 * whole records count: a fragment that names a job does not make it done.
 */
async function recordedJobs(dir: string, pending: readonly ReceiptJob[]): Promise<Set<string>> {
  const found = new Set<string>();
  if (pending.length === 0) return found;
  const ids = new Set(pending.map((j) => j.job));
  const since = pending.map((j) => dayOf(new Date(j.started_at))).sort()[0] as string;
  const files = (await readdir(dir).catch(() => [] as string[])).filter((f) => FILE_RE.test(f) && (FILE_RE.exec(f) as RegExpExecArray)[1]! >= since);
  for (const f of files) {
    for (const line of (await readFile(join(dir, f), 'utf8')).split('\n')) {
      if (!/"job":"[0-9a-f-]{36}"/.test(line)) continue;
      const job = parseRecord(line)?.job;
      if (typeof job === 'string' && ids.has(job)) found.add(job);
    }
  }
  return found;
}
