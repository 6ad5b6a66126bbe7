import { open, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { lineHash } from '../audit/format.js';
import { auditFiles, parseRecord } from '../audit/recover.js';
import type { AuditLine } from './records.js';

/** Where the exporter stands: the next byte to read and the last record exported (seq 0: none yet). */
export interface Cursor {
  file: string;
  offset: number;
  seq: number;
  hash: string;
}

export interface TailBatch {
  lines: AuditLine[];
  /** The cursor once these lines are exported. */
  next: Cursor;
  /** Records that will never be exported: their file was pruned or cut before the exporter read them, or the line is no record. */
  dropped: number;
}

/** Longest stretch of a file read at once (a record is far smaller). */
const MAX_READ_BYTES = 4 * 1024 * 1024;

/**
 * Read the records after `cursor` from the audit files, up to `max` records: the files are the
 * source of truth and nothing is kept in memory between reads. A file pruned by retention (or cut
 * shorter) before it was read moves the cursor to the next file; the seqs skipped are counted as
 * dropped. Gap records written by the audit log carry their own lost seqs and are no drop here.
 * Nothing after `upToSeq` is read: the audit log's durable head (a write that failed half-way is
 * cut back and written again, with another time, so bytes past the head are not final yet).
 */
export async function readAfter(dir: string, cursor: Cursor, max: number, upToSeq = Infinity): Promise<TailBatch> {
  const files = await auditFiles(dir);
  const lines: AuditLine[] = [];
  let at = { ...cursor };
  let dropped = 0;
  let ahead = false;
  let i = at.file ? files.indexOf(at.file) : 0;
  if (i < 0) {
    // The cursor's file is gone (retention, or removed): continue with the next one by name.
    i = files.findIndex((f) => f > at.file);
    if (i < 0) return { lines, next: at, dropped };
    at = { ...at, file: files[i] as string, offset: 0 };
  }
  for (; i < files.length && lines.length < max; i++) {
    const file = files[i] as string;
    if (file !== at.file) at = { ...at, file, offset: 0 };
    const size = (await stat(join(dir, file)).catch(() => ({ size: 0 }))).size;
    if (size <= at.offset) continue;
    const chunk = await readChunk(join(dir, file), at.offset, Math.min(size - at.offset, MAX_READ_BYTES));
    const end = chunk.lastIndexOf(0x0a);
    if (end < 0) {
      // A record still being written: wait for it. In a file the log has moved on from, it never ends: a drop.
      if (i === files.length - 1) break;
      dropped += 1;
      continue;
    }
    for (const raw of chunk.subarray(0, end).toString('utf8').split('\n')) {
      if (lines.length >= max) break;
      const rec = parseRecord(raw);
      if (rec && (rec.seq as number) > upToSeq) {
        ahead = true;
        break;
      }
      at = { ...at, offset: at.offset + Buffer.byteLength(raw) + 1 };
      if (!rec) {
        dropped += 1;
        continue;
      }
      const seq = rec.seq as number;
      dropped += skipped(rec, at.seq);
      lines.push({ text: raw, seq, prev: rec.prev as string, type: typeof rec.type === 'string' ? rec.type : 'record', time: typeof rec.time === 'string' ? rec.time : '' });
      at = { ...at, seq, hash: '' };
    }
    if (ahead || lines.length >= max || end + 1 < chunk.length) break;
  }
  if (lines.length > 0) at.hash = lineHash((lines.at(-1) as AuditLine).text);
  return { lines, next: at, dropped };
}

/** Seqs between the last exported record and this one that no gap record accounts for. */
function skipped(rec: Record<string, unknown>, lastSeq: number): number {
  const lost = rec.type === 'gap' ? (rec.lost as { from_seq?: unknown } | undefined) : undefined;
  // A gap record accounts for the seqs from its `lost.from_seq` on: only those before it are the exporter's loss.
  const first = lost && typeof lost.from_seq === 'number' ? lost.from_seq : (rec.seq as number);
  return lastSeq > 0 && first > lastSeq + 1 ? first - lastSeq - 1 : 0;
}

/** `length` bytes of `path` from `offset` (fewer at its end). */
export async function readChunk(path: string, offset: number, length: number): Promise<Buffer> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(length);
    const { bytesRead } = await fh.read(buf, 0, length, offset);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}
