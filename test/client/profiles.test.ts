import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import OpenAI from 'openai';
import { afterEach, describe, expect, test } from 'vitest';
import { attestedFetch, type AttestedFetch } from '../../src/client/fetch.js';
import type { AttestedOptions } from '../../src/client/options.js';
import { CertificateChainError } from '../../src/errors/attestation.js';
import { startSimulator, type RunningSimulator } from '../../src/sim/index.js';
import { createAciDeployment } from '../../src/sim/mint/aci.js';
import { createNearDeployment } from '../../src/sim/mint/near.js';
import { createPinaivuDeployment } from '../../src/sim/mint/pinaivu.js';
import { createRouterEvidence } from '../../src/sim/mint/router.js';
import { toPem, type Certificate } from '../../src/x509/certificate.js';
import { processScratch } from '../helpers/spawn.js';

const scratch = processScratch('tresor-lib-profiles-');
const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()?.();
});

/** The simulator speaking one profile, and attestedFetch options for it with its test root passed explicitly. */
async function profileSim(profile: 'aci' | 'near' | 'pinaivu'): Promise<{ sim: RunningSimulator; options: AttestedOptions; root: string }> {
  const dir = scratch.dir;
  const evidence = await createRouterEvidence({});
  let measurement: string;
  let root: Certificate;
  let sim: RunningSimulator;
  if (profile === 'aci') {
    const aci = await createAciDeployment();
    sim = await startSimulator({ evidence, aci });
    [measurement, root] = [aci.measurement, aci.pki.ark];
  } else if (profile === 'near') {
    const near = await createNearDeployment();
    sim = await startSimulator({ evidence, near });
    [measurement, root] = [near.mrtd, near.pki.root];
  } else {
    const pinaivu = await createPinaivuDeployment();
    sim = await startSimulator({ evidence, pinaivu });
    [measurement, root] = [pinaivu.pcr0, pinaivu.nitro.root];
  }
  cleanups.push(() => sim.close());
  const caFile = join(dir, `${profile}-ca.pem`);
  const testRoots = join(dir, `${profile}-root.pem`);
  await writeFile(caFile, sim.caPem);
  await writeFile(testRoots, toPem(root));
  return { sim, root: testRoots, options: { baseURL: `${sim.url}/v1`, profile, caFile, allowedMeasurements: [measurement], testRoots, receipts: 'audit', env: {}, ...(profile === 'pinaivu' ? { allowUnboundChannel: true } : {}) } };
}

describe('attestedFetch speaks every profile, with test roots only when passed explicitly', () => {
  test.each(['aci', 'near', 'pinaivu'] as const)('%s: a completion through the openai SDK, attested, its receipt verified', async (profile) => {
    const { options } = await profileSim(profile);
    const fetch: AttestedFetch = attestedFetch(options);
    cleanups.push(() => fetch.close());
    const client = new OpenAI({ baseURL: options.baseURL, apiKey: 'tr-test', fetch, maxRetries: 0 });
    const { data, response } = await client.chat.completions.create({ model: 'gpt-oss-120b', messages: [{ role: 'user', content: `hi ${profile}` }] }).withResponse();
    expect(data.choices[0]?.message.content).toContain(`hi ${profile}`);
    const v = await fetch.verdictFor(response);
    expect(v, JSON.stringify(v)).toMatchObject({ status: 'done', verdict: 'verified' });
    expect(await fetch.agent.status()).toMatchObject({ mode: 'enforce', ready: true });
  });

  test('without testRoots the pinned vendor root is used, and the simulator is refused', async () => {
    const { options } = await profileSim('aci');
    const fetch = attestedFetch({ ...options, testRoots: undefined });
    cleanups.push(() => fetch.close());
    await expect(fetch.ready()).rejects.toBeInstanceOf(CertificateChainError);
  });
});
