import { open, type FileHandle } from 'node:fs/promises';

/**
 * Appends lines to one file with group commit: every line appended within one tick is written
 * with one write and one fdatasync, and each `append` resolves only once its line is durable.
 * The file is created 0600.
 */
export class GroupAppender {
  private fh: FileHandle | undefined;
  private queue: { text: string; durable: boolean; resolve: () => void; reject: (e: unknown) => void }[] = [];
  private flushing: Promise<void> | undefined;
  private bytes = 0;

  constructor(readonly path: string) {}

  /** Bytes written through this appender (not counting what the file held before). */
  get written(): number {
    return this.bytes;
  }

  /** `durable: false` writes without waiting for fdatasync (a hint whose loss a reader tolerates). */
  append(line: string, o: { durable?: boolean } = {}): Promise<void> {
    return new Promise((resolve, reject) => {
      this.queue.push({ text: `${line}\n`, durable: o.durable !== false, resolve, reject });
      this.flushing ??= new Promise<void>((r) => setImmediate(r)).then(() => this.flush());
    });
  }

  /** Create the file (durably) even if nothing was appended. */
  async touch(): Promise<void> {
    while (this.flushing) await this.flushing;
    this.fh ??= await open(this.path, 'a', 0o600);
    await this.fh.sync();
  }

  /** Wait for pending appends, then close the file. */
  async close(): Promise<void> {
    while (this.flushing) await this.flushing;
    await this.fh?.close();
    this.fh = undefined;
  }

  private async flush(): Promise<void> {
    const batch = this.queue;
    this.queue = [];
    try {
      this.fh ??= await open(this.path, 'a', 0o600);
      const text = batch.map((b) => b.text).join('');
      await this.fh.write(text);
      if (batch.some((b) => b.durable)) await this.fh.datasync();
      this.bytes += Buffer.byteLength(text);
      for (const b of batch) b.resolve();
    } catch (e) {
      for (const b of batch) b.reject(e);
    } finally {
      this.flushing = undefined;
      if (this.queue.length > 0) this.flushing = this.flush();
    }
  }
}
