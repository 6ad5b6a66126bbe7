import { appendFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { GENESIS, lineHash, serialise } from '../../src/audit/format.js';
import { readAfter, type Cursor } from '../../src/otlp/tail.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tresor-otlp-tail-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

/** Chained lines seq from..to (and a gap record where asked). */
function chain(from: number, to: number, prev = GENESIS, gapAt?: { seq: number; lost: { from_seq: number; to_seq: number } }): string[] {
  const out: string[] = [];
  const t = new Date('2026-12-06T00:00:00Z');
  for (let seq = from; seq <= to; seq++) {
    const rec = gapAt?.seq === seq ? { type: 'gap', reason: 'truncated', lost: gapAt.lost } : { type: 'receipt', n: seq };
    const line = serialise(seq, t, out.length ? lineHash(out.at(-1) as string) : prev, rec);
    out.push(line);
  }
  return out;
}
const start: Cursor = { file: '', offset: 0, seq: 0, hash: GENESIS };

describe('readAfter: the exporter reads the audit files from its cursor', () => {
  test('reads in order across files up to max, resumes from the returned cursor, waits for a line still being written', async () => {
    const d = join(dir, 'order');
    const lines = chain(1, 7);
    await mkdir(d);
    await writeFile(join(d, 'audit-20261206-0001.jsonl'), `${lines.slice(0, 4).join('\n')}\n`);
    await writeFile(join(d, 'audit-20261206-0002.jsonl'), `${lines.slice(4, 6).join('\n')}\n${(lines[6] as string).slice(0, 10)}`);
    const a = await readAfter(d, start, 3);
    expect(a.lines.map((l) => l.seq)).toEqual([1, 2, 3]);
    expect(a.next).toMatchObject({ file: 'audit-20261206-0001.jsonl', seq: 3, hash: lineHash(lines[2] as string) });
    const b = await readAfter(d, a.next, 10);
    expect(b.lines.map((l) => l.seq)).toEqual([4, 5, 6]);
    expect(b.lines[0]?.text).toBe(lines[3]);
    expect(b.dropped).toBe(0);
    // The partial 7th line is not read until it is whole.
    expect((await readAfter(d, b.next, 10)).lines).toEqual([]);
    await appendFile(join(d, 'audit-20261206-0002.jsonl'), `${(lines[6] as string).slice(10)}\n`);
    expect((await readAfter(d, b.next, 10)).lines.map((l) => l.text)).toEqual([lines[6]]);
    // Nothing past the audit log's durable head is read (a failed write may still be cut back).
    const c = await readAfter(d, start, 10, 2);
    expect(c.lines.map((l) => l.seq)).toEqual([1, 2]);
    expect((await readAfter(d, c.next, 10, 2)).lines).toEqual([]);
  });

  test('a file pruned before it was read: the next file, the skipped seqs counted as dropped; a gap record accounts for its own lost seqs', async () => {
    const d = join(dir, 'pruned');
    await mkdir(d);
    const lines = chain(1, 9, GENESIS, { seq: 9, lost: { from_seq: 7, to_seq: 8 } });
    // File 1 (seq 1-2) was read; file 2 (seq 3-4) was pruned; file 3 holds 5-6, then a gap record at 9 for 7..8.
    const cursor: Cursor = { file: 'audit-20261206-0001.jsonl', offset: 0, seq: 2, hash: lineHash(lines[1] as string) };
    await writeFile(join(d, 'audit-20261206-0003.jsonl'), `${[lines[4], lines[5]].join('\n')}\n${lines[8]}\n`);
    const r = await readAfter(d, cursor, 10);
    expect(r.lines.map((l) => l.seq)).toEqual([5, 6, 9]);
    expect(r.dropped).toBe(2);
    expect(r.lines.map((l) => l.type)).toEqual(['receipt', 'receipt', 'gap']);
  });
});
