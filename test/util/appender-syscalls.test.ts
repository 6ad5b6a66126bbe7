import { mkdtemp, open, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, test, vi } from 'vitest';

// Counted, not timed: the node:fs calls commitAppend makes per commit.
const calls = vi.hoisted(() => ({ fstatSync: 0, statSync: 0 }));
vi.mock('node:fs', async (importOriginal) => {
  const fs = await importOriginal<typeof import('node:fs')>();
  return {
    ...fs,
    fstatSync: ((...a: Parameters<typeof fs.fstatSync>) => (calls.fstatSync++, fs.fstatSync(...a))) as typeof fs.fstatSync,
    statSync: ((...a: Parameters<typeof fs.statSync>) => (calls.statSync++, fs.statSync(...a))) as typeof fs.statSync,
  };
});
const { commitAppend, FileRemovedError } = await import('../../src/util/appender.js');

const dirs: string[] = [];
afterEach(async () => {
  while (dirs.length) await rm(dirs.pop() as string, { recursive: true, force: true });
});

describe('commitAppend: what a commit asks the file system', () => {
  test('one fstat of the handle (its size, and the identity the path is checked against) and one stat of the path', async () => {
    const d = await mkdtemp(join(tmpdir(), 'tresor-appender-'));
    dirs.push(d);
    const path = join(d, 'log.jsonl');
    const fh = await open(path, 'a', 0o600);
    try {
      calls.fstatSync = calls.statSync = 0;
      let size = await commitAppend(fh, path, 0, Buffer.from('one\n'));
      size += await commitAppend(fh, path, size, Buffer.from('two\n'));
      expect(size).toBe(8);
      expect(calls).toEqual({ fstatSync: 2, statSync: 2 });
      // The same guarantee: another file put at the path is found after the next write.
      await writeFile(join(d, 'other'), '');
      await rename(join(d, 'other'), path);
      await expect(commitAppend(fh, path, size, Buffer.from('three\n'))).rejects.toBeInstanceOf(FileRemovedError);
    } finally {
      await fh.close();
    }
  });
});
