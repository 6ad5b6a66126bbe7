import { fstatSync, ftruncateSync, statSync, writeSync } from 'node:fs';
import { mkdir, open, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';

/**
 * Write all of `text` at the end of the file now, on the calling thread. A small append to the
 * page cache is a plain write(2) of a few µs; the asynchronous fs API hands each write to the
 * libuv pool, which cost 20–40 µs of main-thread time and 30–70 µs of CPU per call on this
 * machine (thread hand-offs). Durability still comes from the (asynchronous) fdatasync after it.
 */
export function appendSync(fh: FileHandle, text: string | Uint8Array): number {
  const bytes = typeof text === 'string' ? Buffer.from(text, 'utf8') : text;
  let off = 0;
  while (off < bytes.length) off += writeSync(fh.fd, bytes, off, bytes.length - off);
  return bytes.length;
}

/** A line: one string, or parts written one after the other (a long member kept out of a concatenated copy). */
export type Line = string | readonly string[];

/**
 * Lines as UTF-8 bytes, each followed by a newline, written part by part into one buffer: the same
 * bytes as `Buffer.from(lines.join('\n') + '\n')` without the joined text (a copy of every line,
 * made again when it is encoded). `bytes`: their total length with the newlines, when known.
 */
export function linesToBytes(lines: readonly Line[], bytes?: number): Buffer {
  let n = bytes ?? 0;
  if (bytes === undefined) for (const l of lines) n += lineBytes(l) + 1;
  const buf = Buffer.allocUnsafe(n);
  let off = 0;
  for (const l of lines) {
    off = writeLine(buf, l, off);
    buf[off++] = 0x0a;
  }
  return buf;
}

/** One line's UTF-8 bytes (no newline), written part by part. */
export function lineToBytes(l: Line): Buffer {
  const buf = Buffer.allocUnsafe(lineBytes(l));
  writeLine(buf, l, 0);
  return buf;
}

function writeLine(buf: Buffer, l: Line, at: number): number {
  let off = at;
  if (typeof l === 'string') off += buf.write(l, off);
  else for (const part of l) off += buf.write(part, off);
  return off;
}

/** A line's length in UTF-8 bytes (without its newline). */
export function lineBytes(l: Line): number {
  if (typeof l === 'string') return Buffer.byteLength(l);
  let n = 0;
  for (const part of l) n += Buffer.byteLength(part);
  return n;
}

/** The file an open handle wrote to is no longer at its path (removed or replaced while open), or was cut shorter than what was committed to it. */
export class FileRemovedError extends Error {
  readonly code = 'ERR_FILE_REMOVED';
  constructor(
    readonly path: string,
    readonly how: 'removed' | 'truncated' = 'removed',
  ) {
    super(`${path} was ${how} while open`);
  }
}

/**
 * Append `text` to a file whose committed length is `size`, fdatasync it (when `durable`), and check
 * that the file is still the one at `path` (a removed file would swallow every later write). Any
 * failure, a short write included, cuts the file back to `size` before it is thrown: no fragment is
 * left for the next record to be appended to. A file found longer than `size` (a fragment an earlier
 * cut could not remove) is cut first; one found shorter was cut by someone else (FileRemovedError,
 * 'truncated': committed lines are gone). Returns the bytes written.
 */
export async function commitAppend(fh: FileHandle, path: string, size: number, text: string | Uint8Array, durable = true): Promise<number> {
  const held = fstatSync(fh.fd);
  if (held.size < size) throw new FileRemovedError(path, 'truncated');
  if (held.size > size) ftruncateSync(fh.fd, size);
  try {
    const n = appendSync(fh, text);
    if (durable) await fh.datasync();
    // An open descriptor never changes file: the identity fstat gave before the write still holds, only the path needs a look.
    const named = statSync(path, { throwIfNoEntry: false });
    if (!named || named.ino !== held.ino || named.dev !== held.dev) throw new FileRemovedError(path);
    return n;
  } catch (e) {
    if (!(e instanceof FileRemovedError)) {
      try {
        ftruncateSync(fh.fd, size);
      } catch {
        /* cut again before the next write */
      }
    }
    throw e;
  }
}

/** Where commits are reported (the audit trail's `AuditHealth`): failed ones and ones that worked again. */
export interface CommitHealth {
  fail(source: string, e: unknown, held: number): void;
  ok(source: string, written: number): void;
}

/** Where writers of the audit trail report commits that failed and commits that worked again. */
export interface DurabilityOptions {
  health?: CommitHealth | undefined;
  /** The name `health` knows this file set by (audit, archive, journal). */
  source?: string;
  /** How long to wait before retrying a commit that failed (default 1000 ms). */
  retryMs?: number;
  /** A removed file (or its directory) was recreated: called before the held lines are written to it. */
  onRecreated?: (path: string) => void;
}

export const DEFAULT_RETRY_MS = 1000;

/**
 * When a group commit runs: at the next turn of the event loop or, for appends nobody is waiting
 * on right away, after a window of `windowMs` that gathers more of them into one write and one
 * fdatasync (an fdatasync costs far more CPU than the write: about 0.5 ms on this machine's ext4).
 * An urgent append cuts a window short. One commit at a time; what is appended during a commit
 * goes into the next one.
 */
export class CommitScheduler {
  private running: Promise<void> | undefined;
  private wake: (() => void) | undefined;

  constructor(
    private readonly windowMs: number,
    /** What is queued: anything, and anything urgent. */
    private readonly pending: () => { any: boolean; urgent: boolean },
    /** Commit everything queued; never rejects (failures go to the appends). */
    private readonly commit: () => Promise<void>,
  ) {}

  /** The commit cycle in progress (undefined when idle). */
  get busy(): Promise<void> | undefined {
    return this.running;
  }

  request(urgent: boolean): void {
    if (this.running) {
      if (urgent) this.wake?.();
      return;
    }
    this.running = this.cycle(urgent);
  }

  private async cycle(urgent: boolean): Promise<void> {
    await this.wait(urgent, true);
    for (;;) {
      await this.commit();
      const p = this.pending();
      if (!p.any) {
        // Cleared before returning, so that an append made from here on starts a new cycle.
        this.running = undefined;
        return;
      }
      await this.wait(p.urgent, false);
    }
  }

  private wait(urgent: boolean, first: boolean): Promise<void> {
    if (urgent || this.windowMs <= 0) return first ? new Promise((r) => setImmediate(r)) : Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, this.windowMs);
      this.wake = done;
    });
  }
}

/**
 * Appends lines to one file with group commit: the lines appended before a commit runs (see
 * CommitScheduler) are written with one write (synchronous: see appendSync) and one fdatasync,
 * and each `append` resolves only once its line is durable. The file is created 0600.
 * A commit that fails (disk full, I/O error) leaves no fragment (commitAppend), keeps its lines
 * queued in order, reports to `health` and is retried every `retryMs` until it works: an append
 * never rejects for a failed write, only when the appender is closed while its line is held. A file
 * removed while open is recreated (its directory too) and the held lines go into the new one.
 */
export class GroupAppender {
  private fh: FileHandle | undefined;
  private queue: { line: Line; durable: boolean; urgent: boolean; resolve: () => void; reject: (e: unknown) => void }[] = [];
  private readonly scheduler: CommitScheduler;
  private bytes = 0;
  /** Committed length of the file. */
  private size = 0;
  private closing = false;
  private removed = false;

  /** `commitWindowMs`: how long a non-urgent append may wait for others to share its fdatasync (default 0: the next tick). */
  constructor(
    readonly path: string,
    private readonly o: { commitWindowMs?: number } & DurabilityOptions = {},
  ) {
    this.scheduler = new CommitScheduler(
      o.commitWindowMs ?? 0,
      () => ({ any: this.queue.length > 0, urgent: this.queue.some((q) => q.urgent) }),
      () => this.flush(),
    );
  }

  /** Bytes written through this appender (not counting what the file held before). */
  get written(): number {
    return this.bytes;
  }

  /** Lines appended and not yet durable (held while writing fails). */
  get held(): number {
    return this.queue.length;
  }

  /**
   * `durable: false` writes without waiting for fdatasync (a hint whose loss a reader tolerates);
   * `urgent: false` lets the append wait up to the commit window for others.
   */
  append(line: Line, o: { durable?: boolean; urgent?: boolean } = {}): Promise<void> {
    return new Promise((resolve, reject) => {
      const urgent = o.urgent !== false;
      this.queue.push({ line, durable: o.durable !== false, urgent, resolve, reject });
      this.scheduler.request(urgent);
    });
  }

  /** Create the file (durably) even if nothing was appended. */
  async touch(): Promise<void> {
    while (this.scheduler.busy) await this.scheduler.busy;
    await (await this.openFile()).sync();
  }

  /** Wait for pending appends (one more try for held ones, which are rejected if it fails), then close the file. */
  async close(): Promise<void> {
    this.closing = true;
    while (this.scheduler.busy) await this.scheduler.busy;
    await this.fh?.close();
    this.fh = undefined;
  }

  private async openFile(): Promise<FileHandle> {
    if (this.fh) return this.fh;
    let first: string[] = [];
    if (this.removed) {
      await mkdir(dirname(this.path), { recursive: true, mode: 0o700 });
      first = this.o.onRecreated?.(this.path) ?? [];
      this.removed = false;
    }
    this.fh = await open(this.path, 'a', 0o600);
    this.size = (await this.fh.stat()).size;
    if (first.length > 0) this.size += await commitAppend(this.fh, this.path, this.size, linesToBytes(first));
    return this.fh;
  }

  private async flush(): Promise<void> {
    const batch = this.queue;
    this.queue = [];
    try {
      const fh = await this.openFile();
      const written = await commitAppend(fh, this.path, this.size, linesToBytes(batch.map((b) => b.line)), batch.some((b) => b.durable));
      this.size += written;
      this.bytes += written;
      this.o.health?.ok(this.o.source ?? this.path, batch.length);
      for (const b of batch) b.resolve();
    } catch (e) {
      await this.failed(e, batch);
    }
  }

  /** Keep the batch (in order, ahead of later appends) for the next try; reject it only when closing. */
  private async failed(e: unknown, batch: typeof this.queue): Promise<void> {
    if (e instanceof FileRemovedError) {
      await this.fh?.close().catch(() => undefined);
      this.fh = undefined;
      this.removed = true;
    }
    if (this.closing) {
      for (const b of batch) b.reject(e);
      return;
    }
    this.queue = [...batch, ...this.queue];
    if (e instanceof FileRemovedError) return; // recreated on the next try, at once
    this.o.health?.fail(this.o.source ?? this.path, e, this.queue.length);
    await new Promise((r) => setTimeout(r, this.o.retryMs ?? DEFAULT_RETRY_MS));
  }
}
