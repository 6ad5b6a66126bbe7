import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Argv, CommandModule } from 'yargs';
import { startSimulator } from '../../sim/index.js';
import { createRouterEvidence } from '../../sim/mint/router.js';

interface SimArgs {
  host: string;
  port: number;
  'cert-out'?: string;
  deterministic: boolean;
  'json-bytes': number;
  'stream-chunks': number;
  'chunk-interval-ms': number;
  'latency-ms': number;
  'chunk-delay-ms': number;
  'no-receipts': boolean;
  'unavailable-route': string[];
  evidence: boolean;
  'write-dir'?: string;
}

export const simCommand: CommandModule<object, SimArgs> = {
  command: 'sim',
  describe: 'Run the simulated router (HTTPS, self-signed certificate generated at start) for offline use',
  builder: (y: Argv) =>
    y
      .option('host', { type: 'string', default: '127.0.0.1', describe: 'Address to listen on' })
      .option('port', { type: 'number', default: 8443, describe: 'Port (0 picks a free one)' })
      .option('cert-out', { type: 'string', describe: "Write the simulator's certificate (PEM) here, for the daemon's ca_file" })
      .option('deterministic', { type: 'boolean', default: false, describe: 'Fixed response sizes and chunk timings (benchmarks)' })
      .option('json-bytes', { type: 'number', default: 1024, describe: 'Deterministic mode: generated text size' })
      .option('stream-chunks', { type: 'number', default: 50, describe: 'Deterministic mode: content chunks per stream' })
      .option('chunk-interval-ms', { type: 'number', default: 0, describe: 'Deterministic mode: delay between chunks' })
      .option('latency-ms', { type: 'number', default: 0, describe: 'Fault: delay before response headers' })
      .option('chunk-delay-ms', { type: 'number', default: 0, describe: 'Fault: delay between stream chunks' })
      .option('no-receipts', { type: 'boolean', default: false, describe: 'Do not issue receipts' })
      .option('evidence', { type: 'boolean', default: true, describe: 'Serve SNP evidence from test roots at /attestation and a signed trust bundle at /trust/router.json (--no-evidence: 503)' })
      .option('write-dir', { type: 'string', describe: 'Write sim-ca.pem and release-root.pub (the test release-root key) into this directory' })
      .option('unavailable-route', { type: 'string', array: true, default: [], describe: 'Fault: route that fails (forces failover); repeatable' })
      .epilog('Accepts any API key that starts with tr-. Its certificate and keys are test material: never trust them outside tests.') as Argv<SimArgs>,
  handler: async (args) => {
    const evidence = args.evidence ? await createRouterEvidence() : undefined;
    const sim = await startSimulator({
      ...(evidence ? { evidence } : {}),
      host: args.host,
      port: args.port,
      receipts: !args['no-receipts'],
      faults: { latencyMs: args['latency-ms'], chunkDelayMs: args['chunk-delay-ms'], unavailableRoutes: args['unavailable-route'] },
      ...(args.deterministic
        ? { deterministic: { jsonBytes: args['json-bytes'], streamChunks: args['stream-chunks'], chunkIntervalMs: args['chunk-interval-ms'] } }
        : {}),
    });
    if (args['cert-out']) await writeFile(args['cert-out'], sim.caPem);
    if (args['write-dir']) {
      await mkdir(args['write-dir'], { recursive: true });
      await writeFile(join(args['write-dir'], 'sim-ca.pem'), sim.caPem);
      if (evidence) await writeFile(join(args['write-dir'], 'release-root.pub'), evidence.releaseRoot.publicPem);
    }
    process.stdout.write(
      `simulated router listening on ${sim.url}\n` +
        `TLS certificate SHA-256:  ${sim.fingerprint}\n` +
        `TLS SPKI SHA-256:         ${sim.spkiSha256}\n` +
        (args['cert-out'] ? `certificate written to:   ${args['cert-out']}\n` : '') +
        (evidence ? `trust bundle:             ${evidence.bundleUrl} (release-root key: the simulator's own test key)\n` : '') +
        (args['write-dir'] ? `wrote sim-ca.pem${evidence ? ' and release-root.pub' : ''} to ${args['write-dir']}\n` : ''),
    );
    const stop = () => void sim.close().then(() => process.exit(0));
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  },
};
