import { createReadStream } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { ARCHIVE_RE } from '../audit/archive.js';
import { EVIDENCE_DIR, ID_RE, type PinDocument } from '../audit/evidence.js';
import { readChunk } from './tail.js';
import { OldestFirst } from '../util/oldest-first.js';

/** Evidence blob ids remembered as sent (per exporter run): a bounded set, oldest forgotten first. */
const SENT_MAX = 4096;
/** Archive line positions remembered (about 150 bytes each). */
const LINES_MAX = 16_384;

/** What an audit record names that lives beside the log and travels before it (docs/wire.md §7.1). */
export type Attachment = { kind: 'evidence'; sha256: string; bytes: Buffer } | { kind: 'receipt'; sha256: string; jws: string };

/**
 * Finds, for a batch of audit records, the evidence blobs (`evidence/<sha256>`: a pin document and
 * the parts it names) and the archived receipt JWSs (`receipts-YYYYMMDD.jsonl`) the records name,
 * so that a collector's export carries what `tresor-verify audit --otlp-json` needs to re-verify
 * every pin and receipt offline. Nothing is kept in memory between batches but the ids of blobs
 * already sent (at-least-once: a blob forgotten is sent again) and how far each archive file was
 * read. A blob or receipt that is gone (pruned) is not sent: the verifier reports it.
 */
export class Attachments {
  private readonly sent = new Set<string>();
  /** Bytes of each archive file already scanned. */
  private readonly scanned = new Map<string, number>();
  /** Where the archive lines scanned lie, by hash (bounded, oldest forgotten first). */
  private readonly lines = new Map<string, { file: string; offset: number; length: number }>();
  private readonly oldestLines = new OldestFirst(this.lines);
  private forgotten = false;

  constructor(private readonly dir: string) {}

  /** The evidence blobs of one pin (its parts, then the pin document), those not yet sent. */
  async evidence(id: unknown, pending: Set<string>): Promise<Attachment[]> {
    if (typeof id !== 'string' || !ID_RE.test(id) || this.sent.has(id) || pending.has(id)) return [];
    const doc = await this.blob(id);
    if (!doc) return [];
    let parts: string[] = [];
    try {
      parts = Object.values((JSON.parse(doc.toString('utf8')) as PinDocument | null)?.blobs ?? {}).map(String);
    } catch {
      /* not a pin document: sent as it is, the verifier reports it */
    }
    const out: Attachment[] = [];
    for (const part of parts) {
      if (!ID_RE.test(part) || this.sent.has(part) || pending.has(part)) continue;
      const bytes = await this.blob(part);
      if (bytes) out.push({ kind: 'evidence', sha256: part, bytes });
      pending.add(part);
    }
    pending.add(id);
    return [...out, { kind: 'evidence', sha256: id, bytes: doc }];
  }

  /** Remember blobs the collector accepted. */
  accepted(ids: Iterable<string>): void {
    for (const id of ids) {
      this.sent.delete(id);
      this.sent.add(id);
      if (this.sent.size > SENT_MAX) this.sent.delete(this.sent.values().next().value as string);
    }
  }

  private blob(id: string): Promise<Buffer | undefined> {
    return readFile(join(this.dir, EVIDENCE_DIR, id)).catch(() => undefined);
  }

  /**
   * The archived JWS of each hash in `wanted`, as archived (a line whose JWS does not hash to its
   * name is sent all the same: the verifier reports it). Receipts are archived in about the order
   * of their records, beside them: each archive file is scanned on from where the last batch
   * stopped, and where each line scanned lies is remembered (bounded), so a receipt archived before
   * an earlier batch scanned past it, or a batch sent again, is read back directly. A file is
   * scanned from its start again only for a receipt not found so, once positions were forgotten.
   */
  async receipts(wanted: ReadonlySet<string>): Promise<Map<string, string>> {
    const found = new Map<string, string>();
    for (const sha of wanted) {
      const at = this.lines.get(sha);
      const jws = at ? jwsOf((await readChunk(join(this.dir, at.file), at.offset, at.length).catch(() => undefined))?.toString('utf8')) : undefined;
      if (jws !== undefined) found.set(sha, jws);
    }
    if (found.size === wanted.size) return found;
    const files = (await readdir(this.dir).catch(() => [] as string[])).filter((f) => ARCHIVE_RE.test(f)).sort();
    for (const f of files) {
      const from = this.scanned.get(f) ?? 0;
      const size = (await stat(join(this.dir, f)).catch(() => ({ size: 0 }))).size;
      const read = await scan(join(this.dir, f), from, size, (sha, offset, line) => {
        this.remember(sha, { file: f, offset, length: Buffer.byteLength(line) });
        const jws = wanted.has(sha) ? jwsOf(line) : undefined;
        if (jws !== undefined) found.set(sha, jws);
      });
      this.scanned.set(f, from + read);
    }
    for (const f of this.forgotten ? files : []) {
      if (found.size === wanted.size) break;
      await scan(join(this.dir, f), 0, this.scanned.get(f) ?? 0, (sha, _offset, line) => {
        const jws = wanted.has(sha) && !found.has(sha) ? jwsOf(line) : undefined;
        if (jws !== undefined) found.set(sha, jws);
      });
    }
    return found;
  }

  private remember(sha: string, at: { file: string; offset: number; length: number }): void {
    this.lines.set(sha, at);
    if (this.lines.size <= LINES_MAX) return;
    this.oldestLines.trim(LINES_MAX);
    this.forgotten = true;
  }
}

/** The JWS of an archive line, if it is one. */
function jwsOf(line: string | undefined): string | undefined {
  try {
    const { jws } = JSON.parse(line ?? '') as { jws?: unknown };
    return typeof jws === 'string' ? jws : undefined;
  } catch {
    return undefined; // a torn line: looked for again on the next batch
  }
}

/**
 * Each whole line in bytes [from, to) of an archive file, with its hash (`{"sha256":"<hex>",...`)
 * and offset; returns the bytes of whole lines read (a last line still being written is not).
 */
async function scan(path: string, from: number, to: number, each: (sha: string, offset: number, line: string) => void): Promise<number> {
  if (to <= from) return 0;
  let read = 0;
  let last: { line: string; offset: number } | undefined;
  const lines = createInterface({ input: createReadStream(path, { start: from, end: to - 1 }), crlfDelay: Infinity });
  const emit = (l: { line: string; offset: number }) => {
    const sha = l.line.slice(11, 75);
    if (ID_RE.test(sha)) each(sha, l.offset, l.line);
  };
  for await (const line of lines) {
    if (last) emit(last);
    last = { line, offset: from + read };
    read += Buffer.byteLength(line) + 1;
  }
  if (!last) return 0;
  if (await endsWithNewline(path, from + read - 1)) {
    emit(last);
    return read;
  }
  return read - Buffer.byteLength(last.line) - 1;
}

async function endsWithNewline(path: string, at: number): Promise<boolean> {
  const chunks: Buffer[] = [];
  for await (const c of createReadStream(path, { start: at, end: at })) chunks.push(c as Buffer);
  return Buffer.concat(chunks)[0] === 0x0a;
}
