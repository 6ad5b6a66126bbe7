import { readFileSync } from 'node:fs';
import { open, readFile, rename, rm } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { UsageError } from '../errors/index.js';

export const LOCK_FILE = 'tresor-attest.lock';

/** Another live daemon holds the directory: exit 2, naming it. */
export class DirLockedError extends UsageError {
  constructor(dir: string, holder: LockHolder) {
    super('ERR_STATE_LOCKED', `${dir} is in use by another tresor-attest (pid ${holder.pid} on ${holder.host}, since ${holder.started_at}): one daemon per state directory`, { detail: { pid: holder.pid } });
  }
}

interface LockHolder {
  pid: number;
  /** The process's start time in clock ticks since boot (/proc/<pid>/stat field 22): tells a reused pid from the holder. */
  start: string | null;
  host: string;
  started_at: string;
}

/** This process's locks (a second daemon in the same process is a second writer too). */
const held = new Set<string>();

const procStart = (pid: number): string | null => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
};

/**
 * Whether the recorded holder still runs: same host, and a process with that pid and (where
 * /proc tells) that start time. A lock left by a daemon killed with SIGKILL names a process that is
 * gone, or a pid now reused by another process (in a container, often this very one): stale.
 */
function holderAlive(h: LockHolder, path: string): boolean {
  if (h.host !== hostname()) return true; // a shared volume: never assume another host's daemon is gone
  if (h.pid === process.pid) return held.has(path);
  try {
    process.kill(h.pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ESRCH') return false;
  }
  const start = procStart(h.pid);
  return h.start === null || start === null || start === h.start;
}

async function readHolder(path: string): Promise<LockHolder | undefined> {
  const text = await readFile(path, 'utf8').catch(() => undefined);
  try {
    const h = JSON.parse(text ?? '') as LockHolder;
    return typeof h.pid === 'number' ? h : undefined;
  } catch {
    return undefined;
  }
}

/**
 * One writer per directory: create `tresor-attest.lock` exclusively with this process's pid, start
 * time and host. A live holder makes this throw DirLockedError; a stale one (its process is gone)
 * is moved aside with a warning and taken over. Release removes the file if it is still ours.
 */
export async function lockDir(dir: string, logger: Logger): Promise<{ release(): Promise<void> }> {
  const path = join(dir, LOCK_FILE);
  const me: LockHolder = { pid: process.pid, start: procStart(process.pid), host: hostname(), started_at: new Date().toISOString() };
  for (let attempt = 0; ; attempt++) {
    try {
      const fh = await open(path, 'wx', 0o600);
      await fh.writeFile(JSON.stringify(me));
      await fh.sync();
      await fh.close();
      held.add(path);
      return {
        async release() {
          held.delete(path);
          const h = await readHolder(path);
          if (h?.pid === me.pid && h.start === me.start) await rm(path, { force: true });
        },
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || attempt >= 3) throw e;
    }
    const holder = await readHolder(path);
    // An unreadable lock may be one being written right now: give its writer a moment.
    if (!holder && attempt === 0) {
      await new Promise((r) => setTimeout(r, 50));
      continue;
    }
    if (holder && holderAlive(holder, path)) throw new DirLockedError(dir, holder);
    const aside = `${path}.stale-${process.pid}`;
    await rename(path, aside).catch(() => undefined);
    // Another starter may have taken the stale lock over between our read and the rename: give it back.
    const moved = await readHolder(aside);
    if (moved && holderAlive(moved, path) && moved.pid !== holder?.pid) {
      await rename(aside, path).catch(() => undefined);
      throw new DirLockedError(dir, moved);
    }
    await rm(aside, { force: true });
    logger.warn({ dir, stalePid: holder?.pid, event: 'state.stale_lock' }, `stale lock in ${dir} (pid ${holder?.pid ?? '?'} is not running: killed or crashed): taken over`);
  }
}
