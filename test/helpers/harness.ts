import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveConfig } from '../../src/config/load.js';
import { createLogger } from '../../src/log/logger.js';
import { startDaemon, type RunningDaemon } from '../../src/proxy/daemon.js';
import type { DaemonHooks } from '../../src/transport/hooks.js';
import { startSimulator, type RunningSimulator, type SimOptions } from '../../src/sim/index.js';
import { createRouterEvidence, type EvidenceKind, type RouterEvidence } from '../../src/sim/mint/router.js';
import { LogSink } from './log-sink.js';
import type { AciDeployment } from '../../src/sim/mint/aci.js';
import type { PinaivuDeployment } from '../../src/sim/mint/pinaivu.js';
import type { NearDeployment } from '../../src/sim/mint/near.js';
import { TEST_ROOTS_FILE, simTestRootsPem } from '../../src/sim/mint/test-roots.js';

export const REAL_KEY = `tr-${'5e'.repeat(48)}`;

export interface Harness {
  sim: RunningSimulator;
  /** The simulator's evidence (faults, release root); attestation is enforced against it. */
  evidence: RouterEvidence;
  daemon: RunningDaemon;
  /** OPENAI_BASE_URL for apps. */
  base: string;
  /** The daemon's origin (for /healthz etc.). */
  origin: string;
  logs: LogSink;
  dir: string;
  close(): Promise<void>;
}

/** The simulator plus the daemon in front of it, with a log sink; everything on 127.0.0.1. */
export async function startHarness(
  opts: {
    sim?: SimOptions;
    upstream?: Record<string, unknown>;
    config?: Record<string, unknown>;
    env?: Record<string, string | undefined>;
    hooks?: DaemonHooks;
    withKey?: boolean;
    /** The simulator's evidence form (default snp). */
    evidenceKind?: EvidenceKind;
    /** The simulator's evidence, made beforehand (e.g. to issue a CRL from its test PKI); default: made here. */
    evidence?: RouterEvidence;
    /** Evidence faults in force before the daemon starts. */
    evidenceFaults?: RouterEvidence['faults'];
    /** Appended to the daemon's ca_file after the simulator CA (e.g. a TLS-intercepting proxy's certificate). */
    extraCaPem?: string;
    /** Merged over the default attestation settings (enforce against the simulator's evidence). */
    attestation?: Record<string, unknown>;
    /** Run the aci/1 profile: the simulator speaks ACI, the daemon's upstream has `profile: aci`. */
    aci?: AciDeployment;
    /** Run the pinaivu profile: the simulator speaks Pinaivu, the daemon's upstream has `profile: pinaivu`. */
    pinaivu?: PinaivuDeployment;
    /** Run the near profile: the simulator speaks NEAR AI Cloud's API, the daemon's upstream has `profile: near`. */
    near?: NearDeployment;
  } = {},
): Promise<Harness> {
  const dir = await mkdtemp(join(tmpdir(), 'tresor-test-'));
  const evidence = opts.evidence ?? (await createRouterEvidence({ ...(opts.evidenceKind ? { kind: opts.evidenceKind } : {}) }));
  Object.assign(evidence.faults, opts.evidenceFaults);
  const sim = await startSimulator({ evidence, ...(opts.aci ? { aci: opts.aci } : {}), ...(opts.pinaivu ? { pinaivu: opts.pinaivu } : {}), ...(opts.near ? { near: opts.near } : {}), ...opts.sim });
  const caFile = join(dir, 'sim-ca.pem');
  await writeFile(caFile, sim.caPem + (opts.extraCaPem ?? ''));
  await writeFile(join(dir, 'release-root.pub'), evidence.releaseRoot.publicPem);
  // The simulator's roots are software CAs: the daemon trusts them only through attestation.test_roots_file.
  await writeFile(join(dir, TEST_ROOTS_FILE), simTestRootsPem({ evidence, aci: opts.aci, pinaivu: opts.pinaivu, near: opts.near }));
  const near = opts.near && { profile: 'near', near: { allowed_measurements: [opts.near.mrtd] } };
  const profile = near ? near : opts.aci
    ? { profile: 'aci', aci: { allowed_measurements: [opts.aci.measurement] } }
    : opts.pinaivu
      ? { profile: 'pinaivu', pinaivu: { allowed_pcr0: [opts.pinaivu.pcr0] } }
      : {};
  // A configuration the daemon refuses (a test of that) must not leave the simulator running.
  const start = async () => {
    const config = resolveConfig(
      {
        log: { level: 'trace' },
        state_dir: join(dir, 'state'),
        shutdown_grace_seconds: 5,
        ...opts.config,
        upstreams: [
          {
            name: 'tresor',
            url: sim.url,
            listen: '127.0.0.1:0',
            ca_file: caFile,
            api_key_env: 'TEST_TRESOR_KEY',
            attestation: {
              mode: 'enforce',
              release_root_file: join(dir, 'release-root.pub'),
              trust_bundle: evidence.bundleUrl,
              test_roots_file: join(dir, TEST_ROOTS_FILE),
              // Pinaivu binds no TLS key: its tests accept that explicitly, as an operator must.
              ...(opts.pinaivu ? { allow_unbound_channel: true } : {}),
              ...opts.attestation,
            },
            ...profile,
            ...opts.upstream,
          },
        ],
      },
      null,
    );
    const logs = new LogSink();
    const env = { ...process.env, HTTPS_PROXY: undefined, https_proxy: undefined, ...(opts.withKey === false ? {} : { TEST_TRESOR_KEY: REAL_KEY }), ...opts.env };
    const daemon = await startDaemon(config, { logger: createLogger({ ...config.log, destination: logs }), env, ...(opts.hooks ? { hooks: opts.hooks } : {}) });
    return { logs, daemon };
  };
  const { logs, daemon } = await start().catch(async (e: unknown) => {
    await sim.close();
    await rm(dir, { recursive: true, force: true });
    throw e;
  });
  const origin = daemon.listeners[0]?.url as string;
  return {
    sim,
    evidence,
    daemon,
    base: `${origin}/v1`,
    origin,
    logs,
    dir,
    async close() {
      await daemon.close(500);
      await sim.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
