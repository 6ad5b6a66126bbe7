import { createReadStream } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { ARCHIVE_RE } from '../audit/archive.js';
import { EVIDENCE_DIR, type PinDocument } from '../audit/evidence.js';

/** Evidence blob ids remembered as sent (per exporter run): a bounded set, oldest forgotten first. */
const SENT_MAX = 4096;
const ID_RE = /^[0-9a-f]{64}$/;

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
  /** Bytes of each archive file already scanned: receipts are archived in about the order of their records. */
  private readonly scanned = new Map<string, number>();

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
   * name is sent all the same: the verifier reports it). Each archive file is scanned on from where
   * the last batch stopped; only for a receipt not found there is it scanned from its start.
   */
  async receipts(wanted: ReadonlySet<string>): Promise<Map<string, string>> {
    const found = new Map<string, string>();
    if (wanted.size === 0) return found;
    const files = (await readdir(this.dir).catch(() => [] as string[])).filter((f) => ARCHIVE_RE.test(f)).sort().reverse();
    for (const f of files) {
      const from = this.scanned.get(f) ?? 0;
      const size = (await stat(join(this.dir, f)).catch(() => ({ size: 0 }))).size;
      this.scanned.set(f, from + (await scan(join(this.dir, f), from, size, wanted, found)));
      if (found.size === wanted.size) return found;
    }
    for (const f of files) {
      await scan(join(this.dir, f), 0, this.scanned.get(f) ?? 0, wanted, found);
      if (found.size === wanted.size) break;
    }
    return found;
  }
}

/** Collect the wanted archive lines in bytes [from, to) of `path`; returns the bytes of whole lines read. */
async function scan(path: string, from: number, to: number, wanted: ReadonlySet<string>, found: Map<string, string>): Promise<number> {
  if (to <= from) return 0;
  let read = 0;
  let pending = 0;
  const lines = createInterface({ input: createReadStream(path, { start: from, end: to - 1 }), crlfDelay: Infinity });
  for await (const line of lines) {
    // The last segment may be a line still being written: only bytes up to a newline count as read.
    read += pending;
    pending = Buffer.byteLength(line) + 1;
    const sha = line.slice(11, 75); // {"sha256":"<64 hex>","jws":...}
    if (!wanted.has(sha) || found.has(sha)) continue;
    try {
      const { jws } = JSON.parse(line) as { jws?: unknown };
      if (typeof jws === 'string') found.set(sha, jws);
    } catch {
      /* a torn line: looked for again on the next batch */
    }
  }
  return read + (pending > 0 && (await endsWithNewline(path, from + read + pending - 1)) ? pending : 0);
}

async function endsWithNewline(path: string, at: number): Promise<boolean> {
  const chunks: Buffer[] = [];
  for await (const c of createReadStream(path, { start: at, end: at })) chunks.push(c as Buffer);
  return Buffer.concat(chunks)[0] === 0x0a;
}
