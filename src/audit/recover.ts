import { open, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { VerificationError } from '../errors/index.js';
import { FILE_RE, GENESIS, lineHash } from './format.js';

/** A chain position: the last record's seq and the SHA-256 of its line (seq 0: the start or the retention anchor). */
export interface ChainPoint {
  seq: number;
  hash: string;
}

/** What was cut off the end of a file at start: a partial line (crash mid-write) or a complete line that is no record. */
export interface MovedAside {
  file: string;
  bytes: number;
  reason: 'torn' | 'malformed';
}

export interface ChainTail extends ChainPoint {
  /** The newest file (basename) and its length once cleaned; '' when there are no files. */
  file: string;
  size: number;
  movedAside: MovedAside[];
}

export const auditFiles = async (dir: string) => (await readdir(dir).catch(() => [] as string[])).filter((f) => FILE_RE.test(f)).sort();

export async function readChainPoint(dir: string, name: 'audit.head' | 'audit.anchor'): Promise<ChainPoint | undefined> {
  const text = await readFile(join(dir, name), 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  try {
    const p = JSON.parse(text) as Partial<ChainPoint>;
    if (typeof p.seq === 'number' && typeof p.hash === 'string') return { seq: p.seq, hash: p.hash };
  } catch {
    /* reported below as unreadable */
  }
  throw new VerificationError('ERR_AUDIT_HEAD_MISMATCH', `${name} in ${dir} is not {seq, hash}: run tresor-attest audit repair to record the loss and continue`);
}

/** A line that is a record as this daemon writes it: JSON with a numeric seq and a prev hash. */
export function parseRecord(line: string): Record<string, unknown> | undefined {
  try {
    const r = JSON.parse(line) as Record<string, unknown>;
    return r && typeof r === 'object' && typeof r.seq === 'number' && typeof r.prev === 'string' ? r : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Cut what is not a whole record off the end of `file` and append it to `<file>.torn` (0600),
 * durably, before the file is truncated: a partial last line, then any complete last lines that do
 * not parse as records. Returns the cleaned text and what was moved.
 */
async function cleanTail(path: string, name: string): Promise<{ text: string; moved: MovedAside[] }> {
  const data = await readFile(path);
  let end = data.lastIndexOf(0x0a) + 1;
  const moved: MovedAside[] = [];
  if (end < data.length) moved.push({ file: name, bytes: data.length - end, reason: 'torn' });
  while (end > 0) {
    const start = end >= 2 ? data.lastIndexOf(0x0a, end - 2) + 1 : 0;
    if (parseRecord(data.subarray(start, end - 1).toString('utf8'))) break;
    moved.unshift({ file: name, bytes: end - start, reason: 'malformed' });
    end = start;
  }
  if (end < data.length) {
    const aside = await open(`${path}.torn`, 'a', 0o600);
    await aside.appendFile(data.subarray(end));
    await aside.sync();
    await aside.close();
    const fh = await open(path, 'r+');
    await fh.truncate(end);
    await fh.sync();
    await fh.close();
  }
  return { text: data.subarray(0, end).toString('utf8'), moved };
}

/**
 * The chain's last record, from the newest file that still has one (each file's bad tail moved
 * aside first); the retention anchor, or the very start, when no file has a record.
 */
export async function chainTail(dir: string): Promise<ChainTail> {
  const files = await auditFiles(dir);
  const movedAside: MovedAside[] = [];
  let newest: { file: string; size: number } | undefined;
  for (const f of [...files].reverse()) {
    const { text, moved } = await cleanTail(join(dir, f), f);
    movedAside.push(...moved);
    newest ??= { file: f, size: Buffer.byteLength(text) };
    const body = text.replace(/\n$/, '');
    const last = body.slice(body.lastIndexOf('\n') + 1);
    if (last) return { seq: (parseRecord(last) as { seq: number }).seq, hash: lineHash(last), ...newest, movedAside };
  }
  const anchor = await readChainPoint(dir, 'audit.anchor');
  return { seq: anchor?.seq ?? 0, hash: anchor?.hash ?? GENESIS, file: newest?.file ?? '', size: newest?.size ?? 0, movedAside };
}

/** The hash of the record `seq`, searched from the newest file back (undefined when no file holds it). */
async function hashAt(dir: string, seq: number): Promise<string | undefined> {
  const prefix = `{"seq":${seq},`;
  for (const f of (await auditFiles(dir)).reverse()) {
    const line = (await readFile(join(dir, f), 'utf8')).split('\n').find((l) => l.startsWith(prefix));
    if (line) return lineHash(line);
  }
  return undefined;
}

/** How the log differs from `audit.head`, which is written only after the records it names are durable. */
export interface HeadProblem {
  reason: 'truncated' | 'rewritten' | 'head_missing';
  detail: string;
  /** Seqs known to be gone (truncation). */
  lost?: { from_seq: number; to_seq: number };
  expected?: ChainPoint;
  found: ChainPoint;
}

/** Undefined when the log agrees with its head (the head may trail the records, never lead or differ). */
export async function headProblem(dir: string, tail: ChainTail, head: ChainPoint | undefined, anchor: ChainPoint | undefined): Promise<HeadProblem | undefined> {
  const found = { seq: tail.seq, hash: tail.hash };
  if (!head) {
    if (tail.seq === 0 && !anchor) return undefined; // a new log
    return { reason: 'head_missing', detail: `audit.head is missing while the log holds records up to seq ${tail.seq}: records after it may have been removed`, found };
  }
  if (head.seq > tail.seq) {
    return { reason: 'truncated', detail: `audit.head records seq ${head.seq}, the log ends at seq ${tail.seq}: records ${tail.seq + 1}..${head.seq} were removed from the end`, lost: { from_seq: tail.seq + 1, to_seq: head.seq }, expected: head, found };
  }
  // A head at or before the retention anchor names a pruned record: only the anchor itself can be compared.
  if (anchor && head.seq <= anchor.seq && !(head.seq === anchor.seq && head.hash !== anchor.hash)) return undefined;
  const at = head.seq === tail.seq ? tail.hash : head.seq === 0 ? GENESIS : anchor?.seq === head.seq ? anchor.hash : await hashAt(dir, head.seq);
  if (at === head.hash) return undefined;
  const detail =
    at === undefined
      ? `audit.head names seq ${head.seq}, which no file holds: records were removed or renumbered`
      : `audit.head records another hash for seq ${head.seq} than the log holds: records up to seq ${tail.seq} were rewritten`;
  return { reason: 'rewritten', detail, expected: head, found };
}
