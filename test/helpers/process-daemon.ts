import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startSimulator, type RunningSimulator } from '../../src/sim/index.js';
import { createRouterEvidence, type RouterEvidence } from '../../src/sim/mint/router.js';
import { TEST_ROOTS_FILE, simTestRootsPem } from '../../src/sim/mint/test-roots.js';
import { spawnBin, waitFor, type Spawned } from './spawn.js';

export interface ProcessSetup {
  sim: RunningSimulator;
  evidence: RouterEvidence;
  /** Holds ca.pem, release-root.pub, test-roots.pem and the daemon's state/. */
  dir: string;
  /** `tresor-attest serve` as a real process against the simulator (attestation enforced). */
  serve(extraEnv?: Record<string, string>): Promise<{ p: Spawned; base: string }>;
  close(): Promise<void>;
}

/** A simulator with SNP evidence, the files the daemon needs to trust it, and a way to start the daemon process. */
export async function processSetup(prefix: string): Promise<ProcessSetup> {
  const evidence = await createRouterEvidence();
  const sim = await startSimulator({ evidence });
  const dir = await mkdtemp(join(tmpdir(), prefix));
  await writeFile(join(dir, 'ca.pem'), sim.caPem);
  await writeFile(join(dir, 'release-root.pub'), evidence.releaseRoot.publicPem);
  await writeFile(join(dir, TEST_ROOTS_FILE), simTestRootsPem({ evidence }));
  return {
    sim,
    evidence,
    dir,
    async serve(extraEnv = {}) {
      const p = spawnBin('tresor-attest', ['serve', '--upstream', sim.url, '--ca-file', join(dir, 'ca.pem'), '--listen', '127.0.0.1:0', '--state-dir', join(dir, 'state')], {
        TRESOR_API_KEY: `tr-${'1'.repeat(96)}`,
        TRESOR_ATTEST_RELEASE_ROOT_FILE: join(dir, 'release-root.pub'),
        TRESOR_ATTEST_TRUST_BUNDLE: evidence.bundleUrl,
        TRESOR_ATTEST_TEST_ROOTS_FILE: join(dir, TEST_ROOTS_FILE),
        ...extraEnv,
      });
      await waitFor(p, (o) => o.includes('serving OPENAI_BASE_URL='));
      return { p, base: /serving OPENAI_BASE_URL=(http:\/\/[^"\s]+)/.exec(p.stdout())?.[1] as string };
    },
    async close() {
      await sim.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
