import { open, rename } from 'node:fs/promises';
import { dirname } from 'node:path';

/**
 * Write `data` to `path` so that after a crash the file holds the old bytes or the new ones, never a mix:
 * a temporary file (0600) written and fdatasynced, then renamed over `path`. With `syncDir`, the directory
 * is fsynced too, so the rename itself survives a crash (needed where a later record names the file).
 */
export async function writeFileDurably(path: string, data: Uint8Array | string, opts: { syncDir?: boolean } = {}): Promise<void> {
  const tmp = `${path}.tmp`;
  const fh = await open(tmp, 'w', 0o600);
  try {
    await fh.writeFile(data);
    await fh.datasync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
  if (!opts.syncDir) return;
  const d = await open(dirname(path), 'r');
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}
