import { createHash } from 'node:crypto';
import { mkdir, open, readFile, rename } from 'node:fs/promises';
import { dirname } from 'node:path';
import { VerificationError } from '../errors/index.js';
import type { Verified } from '../types.js';
import type { TrustBundle } from './verify-bundle.js';

interface Seen {
  version: number;
  sha256: string;
}

/**
 * Rollback protection: the highest trust-bundle version seen per source is persisted (0600,
 * written atomically), and a lower version is refused; the same version with different bytes
 * is refused too (equivocation).
 */
export class RollbackStore {
  private constructor(
    private readonly path: string,
    private readonly seen: Record<string, Seen>,
  ) {}

  static async open(path: string): Promise<RollbackStore> {
    let seen: Record<string, Seen> = {};
    try {
      seen = JSON.parse(await readFile(path, 'utf8')) as Record<string, Seen>;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    return new RollbackStore(path, seen);
  }

  highest(source: string): number | undefined {
    return this.seen[source]?.version;
  }

  /** Accept `bundle` from `source` or throw; persists a new highest version before returning. */
  async accept(source: string, bundle: Verified<TrustBundle>): Promise<void> {
    const sha256 = createHash('sha256').update(bundle.raw).digest('hex');
    const prior = this.seen[source];
    if (prior && bundle.version < prior.version) {
      throw new VerificationError('ERR_BUNDLE_ROLLBACK', `trust bundle version ${bundle.version} is older than version ${prior.version} already seen`);
    }
    if (prior && bundle.version === prior.version) {
      if (prior.sha256 !== sha256) throw new VerificationError('ERR_BUNDLE_EQUIVOCATION', `two different trust bundles claim version ${bundle.version}`);
      return;
    }
    this.seen[source] = { version: bundle.version, sha256 };
    await mkdir(dirname(this.path), { recursive: true, mode: 0o700 });
    const tmp = `${this.path}.${process.pid}.tmp`;
    const fh = await open(tmp, 'w', 0o600);
    try {
      await fh.writeFile(JSON.stringify(this.seen, null, 2));
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, this.path);
  }
}
