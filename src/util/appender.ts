import { writeSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';

/**
 * Write all of `text` at the end of the file now, on the calling thread. A small append to the
 * page cache is a plain write(2) of a few µs; the asynchronous fs API hands each write to the
 * libuv pool, which cost 20–40 µs of main-thread time and 30–70 µs of CPU per call on this
 * machine (thread hand-offs). Durability still comes from the (asynchronous) fdatasync after it.
 */
export function appendSync(fh: FileHandle, text: string): number {
  const bytes = Buffer.from(text, 'utf8');
  let off = 0;
  while (off < bytes.length) off += writeSync(fh.fd, bytes, off, bytes.length - off);
  return bytes.length;
}

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
 */
export class GroupAppender {
  private fh: FileHandle | undefined;
  private queue: { text: string; durable: boolean; urgent: boolean; resolve: () => void; reject: (e: unknown) => void }[] = [];
  private readonly scheduler: CommitScheduler;
  private bytes = 0;

  /** `commitWindowMs`: how long a non-urgent append may wait for others to share its fdatasync (default 0: the next tick). */
  constructor(
    readonly path: string,
    o: { commitWindowMs?: number } = {},
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

  /**
   * `durable: false` writes without waiting for fdatasync (a hint whose loss a reader tolerates);
   * `urgent: false` lets the append wait up to the commit window for others.
   */
  append(line: string, o: { durable?: boolean; urgent?: boolean } = {}): Promise<void> {
    return new Promise((resolve, reject) => {
      const urgent = o.urgent !== false;
      this.queue.push({ text: `${line}\n`, durable: o.durable !== false, urgent, resolve, reject });
      this.scheduler.request(urgent);
    });
  }

  /** Create the file (durably) even if nothing was appended. */
  async touch(): Promise<void> {
    while (this.scheduler.busy) await this.scheduler.busy;
    this.fh ??= await open(this.path, 'a', 0o600);
    await this.fh.sync();
  }

  /** Wait for pending appends, then close the file. */
  async close(): Promise<void> {
    while (this.scheduler.busy) await this.scheduler.busy;
    await this.fh?.close();
    this.fh = undefined;
  }

  private async flush(): Promise<void> {
    const batch = this.queue;
    this.queue = [];
    try {
      this.fh ??= await open(this.path, 'a', 0o600);
      const text = batch.length === 1 ? (batch[0] as { text: string }).text : batch.map((b) => b.text).join('');
      const written = appendSync(this.fh, text);
      if (batch.some((b) => b.durable)) await this.fh.datasync();
      this.bytes += written;
      for (const b of batch) b.resolve();
    } catch (e) {
      for (const b of batch) b.reject(e);
    }
  }
}
