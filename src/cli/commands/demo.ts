import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Argv, CommandModule } from 'yargs';
import { resolveConfig } from '../../config/load.js';
import { toTresorError, UsageError } from '../../errors/index.js';
import { createLogger } from '../../log/logger.js';
import { startDaemon } from '../../proxy/daemon.js';
import { startSimulator } from '../../sim/index.js';
import { createRouterEvidence } from '../../sim/mint/router.js';
import { createAciDeployment } from '../../sim/mint/aci.js';
import { createPinaivuDeployment } from '../../sim/mint/pinaivu.js';
import { createNearDeployment } from '../../sim/mint/near.js';
import { TEST_ROOTS_FILE, simTestRootsPem } from '../../sim/mint/test-roots.js';
import { exitCodeFor } from '../exit-codes.js';

/** The openai SDK is not a run-time dependency of the package (only the demo drives it): loaded here, with a clear error when absent. */
async function loadOpenAI() {
  try {
    return (await import('openai')).default;
  } catch {
    throw new UsageError('ERR_DEMO_NEEDS_OPENAI', 'tresor-attest demo drives the official OpenAI SDK, which is not installed here: npm install openai');
  }
}

interface DemoArgs {
  verbose: boolean;
  profile: 'tresor' | 'aci' | 'pinaivu' | 'near';
}

interface TresorBlock {
  receipt_id?: string;
  requested_route?: string;
  routed_model?: string;
  failover?: boolean;
}

/**
 * The main job on an embedded default: start the simulated router and the daemon in this
 * process, send a JSON and a streaming chat completion through the official OpenAI SDK exactly
 * as an app would (OPENAI_BASE_URL + a placeholder key), and say what happened.
 */
export const demoCommand: CommandModule<object, DemoArgs> = {
  command: 'demo',
  describe: 'Run the daemon against the built-in simulated router and send requests through the official OpenAI SDK',
  builder: (y: Argv) =>
    y
      .option('verbose', { type: 'boolean', default: false, describe: "Show the daemon's own log lines" })
      .option('profile', { choices: ['tresor', 'aci', 'pinaivu', 'near'] as const, default: 'tresor' as const, describe: "The router's protocol to demonstrate (the simulator speaks it)" }) as Argv<DemoArgs>,
  handler: async (args) => {
    const dir = await mkdtemp(join(tmpdir(), 'tresor-attest-demo-'));
    const out = (label: string, text: string) => process.stdout.write(`${label.padEnd(16)}${text}\n`);
    let sim: Awaited<ReturnType<typeof startSimulator>> | undefined;
    let daemon: Awaited<ReturnType<typeof startDaemon>> | undefined;
    try {
      const OpenAI = await loadOpenAI();
      // The simulated router proves what it runs with evidence from its own test roots; the daemon
      // pins the simulator's release-root key exactly as it would pin the real one.
      const evidence = await createRouterEvidence();
      const aci = args.profile === 'aci' ? await createAciDeployment() : undefined;
      const pinaivu = args.profile === 'pinaivu' ? await createPinaivuDeployment() : undefined;
      const near = args.profile === 'near' ? await createNearDeployment() : undefined;
      sim = await startSimulator({ evidence, ...(aci ? { aci } : {}), ...(pinaivu ? { pinaivu } : {}), ...(near ? { near } : {}) });
      const caFile = join(dir, 'sim-ca.pem');
      const rootFile = join(dir, 'release-root.pub');
      // The simulator's roots are software CAs: trusted only because this demo names them explicitly.
      const testRootsFile = join(dir, TEST_ROOTS_FILE);
      await writeFile(caFile, sim.caPem);
      await writeFile(rootFile, evidence.releaseRoot.publicPem);
      await writeFile(testRootsFile, simTestRootsPem({ evidence, aci, pinaivu, near }));
      out('router', `${sim.url} (simulated; TLS SPKI SHA-256 ${sim.spkiSha256.slice(0, 16)}…)`);
      const config = resolveConfig(
        {
          log: { level: args.verbose ? 'info' : 'warn' },
          state_dir: join(dir, 'state'),
          upstreams: [
            {
              name: 'tresor',
              url: sim.url,
              listen: '127.0.0.1:0',
              ca_file: caFile,
              api_key_env: 'TRESOR_DEMO_API_KEY',
              attestation: {
                mode: 'enforce',
                release_root_file: rootFile,
                trust_bundle: evidence.bundleUrl,
                test_roots_file: testRootsFile,
                // Pinaivu's evidence binds no TLS key: the demo accepts that explicitly, and says so.
                ...(pinaivu ? { allow_unbound_channel: true } : {}),
              },
              // aci/1: the simulator's TEE measurement is allowed.
              ...(aci ? { profile: 'aci', aci: { allowed_measurements: [aci.measurement] } } : {}),
              // Pinaivu: the simulated coordinator's PCR0 is allowed.
              ...(pinaivu ? { profile: 'pinaivu', pinaivu: { allowed_pcr0: [pinaivu.pcr0] } } : {}),
              // NEAR: the simulated TDs' MRTD is allowed.
              ...(near ? { profile: 'near', near: { allowed_measurements: [near.mrtd] } } : {}),
            },
          ],
        },
        null,
      );
      // The daemon holds the real key; the app below only has a placeholder.
      const env = { ...process.env, TRESOR_DEMO_API_KEY: `tr-${'0'.repeat(96)}` };
      daemon = await startDaemon(config, { logger: createLogger(config.log), env });
      const base = `${daemon.listeners[0]?.url}/v1`;
      out('daemon', `OPENAI_BASE_URL=${base}`);

      const client = new OpenAI({ baseURL: base, apiKey: 'placeholder-the-daemon-injects-the-real-key', maxRetries: 0 });
      const { data: json, response } = await client.chat.completions
        .create({ model: 'gpt-oss-120b', messages: [{ role: 'user', content: 'Hello from the tresor-attest demo!' }] })
        .withResponse();
      // `verified; nonce-bound; channel: bound; test roots`: the state, then how far it is proven.
      const [verdict, ...proven] = (response.headers.get('x-tresor-attestation') ?? '').split('; ');
      if (pinaivu) out('attestation', `${verdict} (pinaivu coordinator): Nitro PCR0 ${response.headers.get('x-tresor-pcr0')?.slice(0, 24)}…`);
      else if (near) out('attestation', `${verdict} (near gateway): TDX MRTD ${response.headers.get('x-tresor-measurement')?.slice(0, 24)}…`);
      else out('attestation', `${verdict}${aci ? ' (aci/1)' : ''}: SNP MEASUREMENT ${response.headers.get('x-tresor-measurement')?.slice(0, 24)}…`);
      out('', `${proven.join('; ')}${proven.includes('test roots') ? " (the simulator's roots, trusted by attestation.test_roots_file)" : ''}`);
      type Status = { upstreams: { attestation?: { identities?: { tag: string; bundleVersion: number; bundleValidUntil: string; expiresAt: string }[] } }[] };
      const status = (await (await fetch(`${daemon.listeners[0]?.url}/status`)).json()) as Status;
      const pinned = status.upstreams[0]?.attestation?.identities?.[0];
      if (pinned && near) out('', `gateway ${pinned.tag} (signing address; quote binds the TLS key) pinned until ${pinned.expiresAt}`);
      else if (pinned && pinaivu) out('', `coordinator key ${pinned.tag.slice(0, 24)}… pinned (the TLS key is the gateway's, not bound by the evidence) until ${pinned.expiresAt}`);
      else if (pinned && aci) out('', `keyset ${pinned.tag.slice(0, 31)}…, TLS key pinned until ${pinned.expiresAt}`);
      else if (pinned) {
        out('', `workload identity tag ${pinned.tag.slice(0, 24)}…, trust bundle v${pinned.bundleVersion} (valid until ${pinned.bundleValidUntil}), TLS key pinned until ${pinned.expiresAt}`);
      }
      // Tresor puts the receipt id in the body's `tresor` block; aci/1 in the X-Receipt-Id header; Pinaivu in the body's `request_id`.
      const t1 = near
        ? { receipt_id: json.id }
        : pinaivu
          ? { receipt_id: (json as unknown as { request_id?: string }).request_id }
          : ((json as unknown as { tresor?: TresorBlock }).tresor ?? { receipt_id: response.headers.get('x-receipt-id') ?? undefined });
      const brief = aci || pinaivu || near;
      out('chat (JSON)', `"${json.choices[0]?.message.content ?? ''}"`);
      out('', brief ? `receipt ${t1.receipt_id}` : `route ${t1.requested_route} → ${t1.routed_model}, failover ${t1.failover}, receipt ${t1.receipt_id}`);

      const { data: stream, response: streamResponse } = await client.chat.completions
        .create({
          model: 'eu/tresor/gpt-oss-120b',
          messages: [{ role: 'user', content: 'Stream a short answer, please.' }],
          stream: true,
        })
        .withResponse();
      let chunks = 0;
      let text = '';
      let t2: TresorBlock = aci ? { receipt_id: streamResponse.headers.get('x-receipt-id') ?? undefined } : {};
      for await (const chunk of stream) {
        chunks++;
        text += chunk.choices[0]?.delta?.content ?? '';
        const block = (chunk as unknown as { tresor?: TresorBlock }).tresor;
        if (block) t2 = block;
        const rid = (chunk as unknown as { request_id?: string }).request_id;
        if (pinaivu && rid) t2 = { receipt_id: rid };
        if (near) t2 = { receipt_id: chunk.id };
      }
      out('chat (stream)', `${chunks} chunks: "${text}"`);
      out('', brief ? `receipt ${t2.receipt_id}` : `route ${t2.requested_route} → ${t2.routed_model}, failover ${t2.failover}, receipt ${t2.receipt_id}`);
      // Each receipt was fetched over the attested connection, verified and written to the audit log.
      let verified = 0;
      for (const id of [t1.receipt_id, t2.receipt_id]) {
        if (!id) continue;
        const v = (await (await fetch(`${daemon.listeners[0]?.url}/receipts/${id}?wait=15`)).json()) as { verdict?: string; code?: string; seq?: number };
        out('receipt', `${id.slice(0, brief ? 13 : 8)}… ${v.verdict ?? 'pending'}${v.code ? ` (${v.code})` : ''}${v.seq ? `, audit record #${v.seq}` : ''}`);
        if (v.verdict === 'verified') verified++;
      }
      const counters = daemon.upstreams.get('tresor')?.counters;
      out('result', `${verified === 2 ? 'OK' : 'FAILED'}: ${counters?.requests ?? 0} requests forwarded, ${counters?.errors ?? 0} errors, ${verified} of 2 receipts verified`);
      if (verified !== 2) process.exitCode = 4;
    } catch (e) {
      const err = toTresorError(e);
      process.stdout.write(`demo failed: ${err.code}: ${err.message}\n`);
      process.exitCode = err.phase === 'internal' ? 1 : exitCodeFor(err.phase);
    } finally {
      await daemon?.close(1000);
      await sim?.close();
      await rm(dir, { recursive: true, force: true });
    }
  },
};
