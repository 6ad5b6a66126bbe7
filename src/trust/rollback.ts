import { createHash } from 'node:crypto';
import { mkdir, open, readFile, rename } from 'node:fs/promises';
import { dirname } from 'node:path';
import { VerificationError } from '../errors/index.js';
import type { Verified } from '../types.js';
import type { TrustBundle } from './verify-bundle.js';

/** What an operator can do when the publisher is a test router (the usual cause), said in both errors. */
const RESET_HINT =
  'If it is a test router restarted with new keys (tresor-attest sim without --keys-dir), delete that file or use a fresh state_dir; ' +
  'start the simulator with --keys-dir DIR to keep its keys and publish increasing versions.';

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
      throw new VerificationError(
        'ERR_BUNDLE_ROLLBACK',
        `trust bundle version ${bundle.version} from ${source} is older than version ${prior.version} already accepted (recorded in ${this.path}): ` +
          `refused as a possible rollback to a revoked bundle. ${RESET_HINT}`,
      );
    }
    if (prior && bundle.version === prior.version) {
      if (prior.sha256 !== sha256) {
        throw new VerificationError(
          'ERR_BUNDLE_EQUIVOCATION',
          `the trust bundle from ${source} claims version ${bundle.version} but differs from the version ${bundle.version} already accepted (recorded in ${this.path}): ` +
            `its publisher signed two different bundles under one version, so neither is trusted. A production publisher never does this: report it. ${RESET_HINT}`,
        );
      }
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
