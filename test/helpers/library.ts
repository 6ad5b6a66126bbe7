import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startSimulator, type RunningSimulator } from '../../src/sim/index.js';
import { createRouterEvidence, type RouterEvidence } from '../../src/sim/mint/router.js';
import type { AttestedOptions } from '../../src/client/options.js';
import { attestedFetch, type AttestedFetch } from '../../src/client/fetch.js';
import { afterAll, afterEach, beforeAll } from 'vitest';
import { TEST_ROOTS_FILE, simTestRootsPem } from '../../src/sim/mint/test-roots.js';

/** The simulator with real SNP evidence from its test roots, and the library options that attest it. */
export interface LibrarySim {
  sim: RunningSimulator;
  evidence: RouterEvidence;
  dir: string;
  /** The SDK's base URL (`…/v1`). */
  baseURL: string;
  /** Files written for the options: the simulator's CA, its release-root key and its test roots (passed explicitly). */
  files: { caFile: string; releaseRootFile: string; testRoots: string };
  /** attestedFetch / AttestedAgent options for the simulator (attestation enforced), HTTPS_PROXY cleared. */
  options(extra?: Partial<AttestedOptions>): AttestedOptions;
  /** What reached the simulator so far: TLS connections, attestation requests, application requests (`/v1/...`). */
  traffic(): Traffic;
  close(): Promise<void>;
}

export interface Traffic {
  connections: number;
  attestations: number;
  application: number;
}

/**
 * A fetch that notes what had reached the simulator when each call began (a retry that finds
 * the same numbers as the end of the test opened no connection and sent nothing), and what each
 * rejected call rejected with.
 */
export function countingFetch(s: LibrarySim, fetch: typeof globalThis.fetch): { fetch: typeof globalThis.fetch; calls: Traffic[]; rejections: unknown[] } {
  const calls: Traffic[] = [];
  const rejections: unknown[] = [];
  return {
    calls,
    rejections,
    fetch: (input, init) => {
      calls.push(s.traffic());
      return fetch(input, init).catch((e: unknown) => {
        rejections.push(e);
        throw e;
      });
    },
  };
}

export async function startLibrarySim(): Promise<LibrarySim> {
  const dir = await mkdtemp(join(tmpdir(), 'tresor-lib-test-'));
  const evidence = await createRouterEvidence({});
  const sim = await startSimulator({ evidence });
  const files = { caFile: join(dir, 'sim-ca.pem'), releaseRootFile: join(dir, 'release-root.pub'), testRoots: join(dir, TEST_ROOTS_FILE) };
  await writeFile(files.caFile, sim.caPem);
  await writeFile(files.releaseRootFile, evidence.releaseRoot.publicPem);
  await writeFile(files.testRoots, simTestRootsPem({ evidence }));
  const baseURL = `${sim.url}/v1`;
  return {
    sim,
    evidence,
    dir,
    baseURL,
    files,
    options: (extra = {}) => ({ baseURL, ...files, trustBundle: evidence.bundleUrl, env: {}, ...extra }),
    traffic: () => ({
      connections: sim.connections(),
      attestations: sim.requestCounts.get('/attestation') ?? 0,
      application: [...sim.requestsByTlsKey.values()].reduce((a, b) => a + b, 0),
    }),
    async close() {
      await sim.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/**
 * One simulator for a test file (started before all tests, closed after), handed to `started`; and
 * `open`, an attestedFetch for it that is closed after each test, when every evidence and receipt
 * fault set on the simulator is also cleared.
 */
export function librarySimFixture(started: (s: LibrarySim) => void): { open: (extra?: Partial<AttestedOptions>) => AttestedFetch } {
  let s: LibrarySim;
  const opened: AttestedFetch[] = [];
  beforeAll(async () => {
    s = await startLibrarySim();
    started(s);
  });
  afterEach(async () => {
    for (const f of opened.splice(0)) await f.close();
    for (const k of Object.keys(s.evidence.faults)) delete (s.evidence.faults as Record<string, unknown>)[k];
    Object.assign(s.sim.faults, { receiptTamper: false });
  });
  afterAll(() => s.close());
  return {
    open: (extra = {}) => {
      const f = attestedFetch(s.options(extra));
      opened.push(f);
      return f;
    },
  };
}
