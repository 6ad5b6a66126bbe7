import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { createLogger } from '../../src/log/logger.js';
import { lockDir, LOCK_FILE } from '../../src/util/dir-lock.js';
import { LogSink } from '../helpers/log-sink.js';

const dirs: string[] = [];
afterEach(async () => {
  while (dirs.length) await rm(dirs.pop() as string, { recursive: true, force: true });
});
async function tmp(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'tresor-lock-'));
  dirs.push(d);
  return d;
}
const startOf = (pid: number) => {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] as string;
};
const holder = (pid: number, start: string | null, host = hostname()) => JSON.stringify({ pid, start, host, started_at: '2026-12-06T00:00:00.000Z' });

describe.skipIf(process.platform !== 'linux')('lockDir: one writer per directory', () => {
  test('a live holder (another process, its start time matching) refuses with ERR_STATE_LOCKED naming its pid; so does a second lock in this process', async () => {
    const dir = await tmp();
    const sink = new LogSink();
    const logger = createLogger({ level: 'info', format: 'json', destination: sink });
    await writeFile(join(dir, LOCK_FILE), holder(process.ppid, startOf(process.ppid)));
    await expect(lockDir(dir, logger)).rejects.toMatchObject({ code: 'ERR_STATE_LOCKED', phase: 'usage', message: expect.stringContaining(`pid ${process.ppid} `) });
    await rm(join(dir, LOCK_FILE));
    const mine = await lockDir(dir, logger);
    await expect(lockDir(dir, logger)).rejects.toMatchObject({ code: 'ERR_STATE_LOCKED', message: expect.stringContaining(`pid ${process.pid} `) });
    await mine.release();
    await expect(readFile(join(dir, LOCK_FILE))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  test.each([
    ['a pid that no longer runs (kill -9)', () => holder(2 ** 22 - 3, '1')],
    ['a pid reused by another process (start time differs)', () => holder(process.ppid, '1')],
    ['this very pid from an earlier life (a container restart)', () => holder(process.pid, '1')],
  ])('a stale lock — %s — is taken over with a warning', async (_name, content) => {
    const dir = await tmp();
    const sink = new LogSink();
    await writeFile(join(dir, LOCK_FILE), content());
    const lock = await lockDir(dir, createLogger({ level: 'info', format: 'json', destination: sink }));
    expect(JSON.parse(await readFile(join(dir, LOCK_FILE), 'utf8'))).toMatchObject({ pid: process.pid, start: startOf(process.pid) });
    expect(sink.records.some((r) => r.event === 'state.stale_lock' && r.level === 40)).toBe(true);
    await lock.release();
  });

  test('a lock written on another host is never taken over', async () => {
    const dir = await tmp();
    await writeFile(join(dir, LOCK_FILE), holder(2 ** 22 - 3, '1', 'another-host.example'));
    await expect(lockDir(dir, createLogger({ level: 'silent', format: 'json', destination: new LogSink() }))).rejects.toMatchObject({ code: 'ERR_STATE_LOCKED', message: expect.stringContaining('on another-host.example') });
  });
});
