import type { Argv, CommandModule } from 'yargs';
import { UsageError } from '../../errors/index.js';
import { attestRouter } from '../../envelope/attest.js';
import { loadReleaseRootKey } from '../../trust/release-root.js';
import { parsePemCertificates } from '../../x509/certificate.js';
import { parseAt, readFlagFile } from '../input.js';
import { runCommand, type Outcome } from '../output.js';
import type { RouterAttestation } from '../../envelope/verify.js';
import { describeRouterAttestation } from '../../envelope/describe.js';
import { snpPolicyFromArgs, snpPolicyOptions, type SnpPolicyArgs } from './snp.js';

interface AttestArgs extends SnpPolicyArgs {
  url: string;
  'release-root': string;
  ca?: string;
  bundle?: string;
  nonce?: string;
  'no-nonce': boolean;
  at?: string;
  'allow-debug': boolean;
  'require-nonce': boolean;
  'test-roots'?: string;
  json: boolean;
}

/** What `tresor-verify attest` prints for a verified router attestation. */
export function attestationOutcome(a: RouterAttestation, nonce: string | undefined, testRootsFile: string | undefined): Outcome {
  return { gap: 1, ...describeRouterAttestation(a, nonce, testRootsFile) };
}

export const attestCommand: CommandModule<object, AttestArgs> = {
  command: 'attest',
  describe: "Verify a router's attestation now: its TLS key bound to hardware evidence of an allowed release",
  builder: (y: Argv) =>
    snpPolicyOptions(
      y
        .option('url', { type: 'string', demandOption: true, describe: 'Router base URL, e.g. https://api.tresor.co' })
        .option('release-root', { type: 'string', demandOption: true, describe: 'Pinned release-root public key (Ed25519: PEM, JWK or hex)' })
        .option('ca', { type: 'string', describe: "Extra CA (PEM) for the router's TLS certificate" })
        .option('bundle', { type: 'string', describe: 'Allowed trust bundle location: URL (must match the envelope) or file (default https://trust.tresor.co/api/router.json)' })
        .option('nonce', { type: 'string', describe: 'Nonce to send (64 hex); default: a fresh random one' })
        .option('no-nonce', { type: 'boolean', default: false, describe: 'Send no nonce' })
        .option('at', { type: 'string', describe: 'Verification time (ISO 8601, default now)' })
        .option('allow-debug', { type: 'boolean', default: false, describe: 'Accept debug guests (never in production)' })
        .option('require-nonce', { type: 'boolean', default: false, describe: 'Refuse SNP evidence that does not carry our nonce in REPORT_DATA[32:64] (the Nitro form always must)' })
        .option('test-roots', {
          type: 'string',
          describe: "PEM test roots (the simulator's test-roots.pem) the bundle may name besides the pinned vendor roots; never for a real router",
        })
        .option('json', { type: 'boolean', default: false, describe: 'Print one JSON object' }),
    ) as unknown as Argv<AttestArgs>,
  handler: (args) =>
    runCommand(args.json, async () => {
      const releaseRootKey = loadReleaseRootKey(await readFlagFile(args['release-root'], '--release-root'));
      const caPem = args.ca ? (await readFlagFile(args.ca, '--ca')).toString('utf8') : undefined;
      const testRoots = args['test-roots'] ? parsePemCertificates((await readFlagFile(args['test-roots'], '--test-roots')).toString('utf8'), '--test-roots') : undefined;
      const { knobs, crl } = await snpPolicyFromArgs(args);
      if (args.nonce !== undefined && !/^[0-9a-f]{64}$/.test(args.nonce)) throw new UsageError('ERR_USAGE_BAD_NONCE', '--nonce: expected 64 lowercase hex digits');
      const { attestation: a, nonce } = await attestRouter({
        url: args.url,
        releaseRootKey,
        ...(caPem ? { caPem } : {}),
        ...(args.bundle ? { bundleLocations: [args.bundle] } : {}),
        nonce: args['no-nonce'] ? false : (args.nonce ?? undefined),
        at: parseAt(args.at) ?? new Date(),
        // SEV-SNP evidence: the flags' knobs and the bundle's `snp`, the stricter winning (stricterSnpPolicy).
        policy: { allowDebug: args['allow-debug'], requireNonce: args['require-nonce'], snp: knobs, ...(crl ? { snpCrl: () => crl } : {}) },
        ...(testRoots ? { testRoots } : {}),
      });
      return attestationOutcome(a, nonce, testRoots ? args['test-roots'] : undefined);
    }),
};
