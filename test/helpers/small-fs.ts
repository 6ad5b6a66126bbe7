import { execFileSync } from 'node:child_process';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A real, size-limited filesystem (tmpfs) mounted by the test, and a file that fills it up. */
export interface SmallFs {
  dir: string;
  /** Write a filler file until the filesystem answers ENOSPC. */
  fill(): Promise<void>;
  /** Remove the filler. */
  free(): Promise<void>;
  close(): Promise<void>;
}

/** Why a small filesystem cannot be mounted here (printed by the tests that skip), or undefined. */
export function smallFsUnavailable(): string | undefined {
  if (process.platform !== 'linux') return `not Linux (${process.platform}): no tmpfs to mount`;
  if (process.getuid?.() !== 0) return 'not root: mounting a size-limited tmpfs needs root';
  return undefined;
}

export async function mountSmallFs(sizeKb: number): Promise<SmallFs> {
  const parent = await mkdtemp(join(tmpdir(), 'tresor-smallfs-'));
  const dir = join(parent, 'mnt');
  execFileSync('mkdir', ['-p', dir]);
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeKb}k,mode=0700`, 'tmpfs', dir]);
  const filler = join(dir, 'filler');
  return {
    dir,
    async fill() {
      const fh = await open(filler, 'a');
      const chunk = Buffer.alloc(4096, 0x78);
      try {
        for (;;) await fh.write(chunk);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
      } finally {
        await fh.close();
      }
    },
    async free() {
      await rm(filler, { force: true });
    },
    async close() {
      execFileSync('umount', ['-l', dir]);
      await rm(parent, { recursive: true, force: true });
    },
  };
}
