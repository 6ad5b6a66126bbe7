import { open, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { FILE_RE } from './format.js';

/** A place in the audit log: reading resumes with the lines that end before `offset` in `file`. */
export interface LogPosition {
  file: string;
  offset: number;
}

const CHUNK = 64 * 1024;

/**
 * The audit log's lines, newest first, across its rotated files (each read backwards from its
 * end, in chunks; only the current partial line is kept): each with the position where it starts,
 * from which a later call resumes with the lines before it. Empty lines are skipped.
 */
export async function* linesNewestFirst(dir: string, from?: LogPosition): AsyncGenerator<{ text: string; start: LogPosition }> {
  const files = (await readdir(dir).catch(() => [] as string[])).filter((f) => FILE_RE.test(f)).sort().reverse();
  const first = from ? files.indexOf(from.file) : 0;
  if (first < 0) return;
  for (let i = first; i < files.length; i++) {
    const file = files[i] as string;
    const fh = await open(join(dir, file), 'r').catch(() => undefined);
    if (!fh) continue;
    try {
      const size = (await fh.stat()).size;
      let pos = from && i === first ? Math.min(from.offset, size) : size;
      let carry = Buffer.alloc(0);
      while (pos > 0) {
        const len = Math.min(CHUNK, pos);
        pos -= len;
        const buf = Buffer.alloc(len);
        await fh.read(buf, 0, len, pos);
        const data = carry.length ? Buffer.concat([buf, carry]) : buf;
        let end = data.length;
        while (end > 0) {
          const nl = data.lastIndexOf(0x0a, end - 1);
          if (nl < 0) break;
          if (end > nl + 1) yield { text: data.toString('utf8', nl + 1, end), start: { file, offset: pos + nl + 1 } };
          end = nl;
        }
        carry = Buffer.from(data.subarray(0, end));
      }
      if (carry.length) yield { text: carry.toString('utf8'), start: { file, offset: 0 } };
    } finally {
      await fh.close();
    }
  }
}
