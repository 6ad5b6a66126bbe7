import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Argv, CommandModule } from 'yargs';
import { UsageError } from '../../errors/index.js';
import { startSimulator } from '../../sim/index.js';
import { startSimControl } from '../../sim/control.js';
import { SIM_HTTP2_WINDOW_BYTES } from '../../sim/server.js';
import { ATTESTATION_FAULTS, SNP_ONLY_FAULTS, createRouterEvidence, type AttestationFaultName, type EvidenceKind } from '../../sim/mint/router.js';
import { loadSimKeys } from '../../sim/keys.js';
import { createAciDeployment, type AciTee } from '../../sim/mint/aci.js';
import { PINAIVU_FAULTS, createPinaivuDeployment, type PinaivuFaultName } from '../../sim/mint/pinaivu.js';
import { NEAR_FAULTS, createNearDeployment, type NearFaultName } from '../../sim/mint/near.js';
import { toPem } from '../../x509/certificate.js';
import { TEST_ROOTS_FILE, simTestRootsPem } from '../../sim/mint/test-roots.js';

type EvidenceChoice = EvidenceKind | 'none';

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
  'http1-only': boolean;
  'http2-window-bytes': number;
  'unavailable-route': string[];
  evidence: EvidenceChoice;
  profile: 'tresor' | 'aci' | 'pinaivu' | 'near';
  'aci-tee'?: AciTee;
  'pinaivu-fault': PinaivuFaultName[];
  'near-fault': NearFaultName[];
  'attestation-fault': AttestationFaultName[];
  'write-dir'?: string;
  'control-port'?: number;
  'keys-dir'?: string;
}

/** `--evidence` alone means snp; `--no-evidence` means none. */
function evidenceChoice(v: unknown): EvidenceChoice {
  if (v === true || v === '' || v === undefined) return 'snp';
  if (v === false) return 'none';
  if (v === 'snp' || v === 'nitro' || v === 'none') return v;
  throw new UsageError('ERR_USAGE_BAD_FLAG', `--evidence: expected snp, nitro or none, got ${JSON.stringify(v)}`);
}

/** A flow-control window HTTP/2 allows raising to (RFC 9113 §6.9.2: 65,535 to 2^31 − 1). */
function http2Window(v: number): number {
  if (!Number.isInteger(v) || v < 65_535 || v > 2 ** 31 - 1) throw new UsageError('ERR_USAGE_BAD_FLAG', `--http2-window-bytes: expected an integer from 65535 to 2147483647, got ${v}`);
  return v;
}

export const simCommand: CommandModule<object, SimArgs> = {
  command: 'sim',
  describe: 'Run the simulated router (HTTPS, its certificate issued by a simulator CA generated at start) for offline use',
  builder: (y: Argv) =>
    y
      .option('host', { type: 'string', default: '127.0.0.1', describe: 'Address to listen on' })
      .option('port', { type: 'number', default: 8443, describe: 'Port (0 picks a free one)' })
      .option('cert-out', { type: 'string', describe: "Write the simulator's CA certificate (PEM) here, for the daemon's ca_file" })
      .option('deterministic', { type: 'boolean', default: false, describe: 'Fixed response sizes and chunk timings (benchmarks)' })
      .option('json-bytes', { type: 'number', default: 1024, describe: 'Deterministic mode: generated text size' })
      .option('stream-chunks', { type: 'number', default: 50, describe: 'Deterministic mode: content chunks per stream' })
      .option('chunk-interval-ms', { type: 'number', default: 0, describe: 'Deterministic mode: delay between chunks' })
      .option('latency-ms', { type: 'number', default: 0, describe: 'Fault: delay before response headers' })
      .option('chunk-delay-ms', { type: 'number', default: 0, describe: 'Fault: delay between stream chunks' })
      .option('no-receipts', { type: 'boolean', default: false, describe: 'Do not issue receipts' })
      .option('http1-only', { type: 'boolean', default: false, describe: 'Refuse HTTP/2: offer only http/1.1 in ALPN (by default both are offered)' })
      .option('http2-window-bytes', {
        type: 'number',
        default: SIM_HTTP2_WINDOW_BYTES,
        describe: "HTTP/2 flow-control window advertised per stream and per connection (65535 = HTTP/2's and Node's default, a WINDOW_UPDATE every 64 KiB of a request body)",
      })
      .option('evidence', {
        type: 'string',
        default: 'snp',
        coerce: evidenceChoice,
        describe:
          'Attestation evidence from test roots at /attestation, with a signed trust bundle at /trust/router.json: snp (AMD SEV-SNP report, the default; --evidence alone), nitro (AWS Nitro document), none (503; also --no-evidence)',
      })
      .option('attestation-fault', {
        type: 'string',
        array: true,
        default: [],
        choices: ATTESTATION_FAULTS,
        describe: 'Fault: make one attestation check fail (repeatable); lowTcb, emptyVcekChain and bundleRefusesSmt are SNP-only',
      })
      .option('keys-dir', {
        type: 'string',
        describe:
          'Keep the release-root and workload identity keys in this directory (created 0700) and reuse them on every start, so a daemon keeps trusting the same release-root.pub; each start publishes the next trust bundle version',
      })
      .option('write-dir', {
        type: 'string',
        describe:
          'Write sim-ca.pem, release-root.pub (the test release-root key) and test-roots.pem (every test root its evidence chains to, for the daemon\'s attestation.test_roots_file), and nitro-root.pem with --evidence nitro, into this directory',
      })
      .option('profile', {
        choices: ['tresor', 'aci', 'pinaivu', 'near'] as const,
        default: 'tresor' as const,
        describe:
          "The router's protocol: tresor, aci (aci/1: /v1/aci/attestation with SEV-SNP evidence from test roots, or TDX with --aci-tee tdx, X-Receipt-Id, /v1/aci/receipts/{id}; with --write-dir also aci-ark.pem, or intel-root.pem), " +
          'or pinaivu (the coordinator\'s Nitro attestation at /get_attestation from a test Nitro PKI, request_id in answers, /v1/receipts/{id} and signed proofs at /v1/proofs/{uuid}; with --write-dir also pinaivu-nitro-root.pem), ' +
          'or near (NEAR AI Cloud: /v1/attestation/report with dstack TDX quotes from a test Intel PKI, EIP-191 signatures at /v1/signature/{chat id}; with --write-dir also near-intel-root.pem); prints the measurement to allow',
      })
      .option('aci-tee', {
        choices: ['sev_snp', 'tdx'] as const,
        describe:
          'With --profile aci: the TEE evidence, sev_snp (the default) or tdx (a TDX quote v4 from a test Intel-like PKI with a dstack event log and app compose; ' +
          'prints MRTD, RTMR0-2 and the compose hash; with --write-dir also intel-root.pem, which test-roots.pem includes)',
      })
      .option('pinaivu-fault', {
        type: 'string',
        array: true,
        default: [],
        choices: PINAIVU_FAULTS,
        describe: 'With --profile pinaivu: make one check fail (repeatable); echoNonce instead makes the coordinator sign the nonce it is asked with',
      })
      .option('near-fault', {
        type: 'string',
        array: true,
        default: [],
        choices: NEAR_FAULTS,
        describe: 'With --profile near: make one check fail (repeatable)',
      })
      .option('control-port', {
        type: 'number',
        describe:
          'Serve a control API on 127.0.0.1:N (0 picks a free one; loopback only): PUT /faults {"attestation": [...], "pinaivu": [...], "near": [...]} ' +
          'sets each listed family to exactly those fault names (an empty list clears them), POST /rotate-tls-key, POST /rotate-receipt-key; 204, or 400 naming an unknown fault; ' +
          'GET /requests says what reached the router (counts per path and, for application requests, per TLS key; the last 1000 request ids with their TLS key)',
      })
      .option('unavailable-route', { type: 'string', array: true, default: [], describe: 'Fault: route that fails (forces failover); repeatable' })
      .epilog(
        'Accepts any API key that starts with tr-. Its CA, certificates and keys are test material: never trust them outside tests.\n' +
          'Attestation faults: wrongMeasurement (MEASUREMENT / PCR0 not allowed), tagNotAllowed, expiredBundle, badBundleSignature, ' +
          'wrongReportData (REPORT_DATA / user_data binding), ignoreNonce, noNonceSupport, staleIssuedAt, debugPolicy (debug guest / all-zero PCRs), ' +
          'bundleEndsSoon (a new bundle version valid for 5 s), ' +
          'lowTcb, emptyVcekChain, bundleRefusesSmt (a new bundle version with snp.allow_smt false; the guest runs with SMT).',
      ) as Argv<SimArgs>,
  handler: async (args) => {
    const http2WindowBytes = http2Window(args['http2-window-bytes']);
    const kind = args.evidence;
    const faults = args['attestation-fault'];
    if (kind === 'none' && faults.length > 0) throw new UsageError('ERR_USAGE_BAD_FLAG', '--attestation-fault needs evidence (--evidence snp or nitro)');
    const snpOnly = faults.filter((f) => SNP_ONLY_FAULTS.includes(f));
    if (kind === 'nitro' && snpOnly.length > 0) throw new UsageError('ERR_USAGE_BAD_FLAG', `--attestation-fault ${snpOnly.join(', ')}: SNP-only, not available with --evidence nitro`);
    const keys = args['keys-dir'] && kind !== 'none' ? await loadSimKeys(args['keys-dir']) : undefined;
    const evidence = kind === 'none' ? undefined : await createRouterEvidence({ kind, ...(keys ? { keys } : {}) });
    for (const f of faults) if (evidence) evidence.faults[f] = true;
    if (args['aci-tee'] !== undefined && args.profile !== 'aci') throw new UsageError('ERR_USAGE_BAD_FLAG', '--aci-tee needs --profile aci');
    const aci = args.profile === 'aci' ? await createAciDeployment({ tee: args['aci-tee'] ?? 'sev_snp' }) : undefined;
    if (args['pinaivu-fault'].length > 0 && args.profile !== 'pinaivu') throw new UsageError('ERR_USAGE_BAD_FLAG', '--pinaivu-fault needs --profile pinaivu');
    const pinaivu = args.profile === 'pinaivu' ? await createPinaivuDeployment() : undefined;
    for (const f of args['pinaivu-fault']) if (pinaivu) pinaivu.faults[f] = true;
    if (args['near-fault'].length > 0 && args.profile !== 'near') throw new UsageError('ERR_USAGE_BAD_FLAG', '--near-fault needs --profile near');
    const near = args.profile === 'near' ? await createNearDeployment() : undefined;
    for (const f of args['near-fault']) if (near) near.faults[f] = true;
    const sim = await startSimulator({
      ...(evidence ? { evidence } : {}),
      ...(aci ? { aci } : {}),
      ...(pinaivu ? { pinaivu } : {}),
      ...(near ? { near } : {}),
      host: args.host,
      port: args.port,
      http1Only: args['http1-only'],
      http2WindowBytes,
      receipts: !args['no-receipts'],
      faults: { latencyMs: args['latency-ms'], chunkDelayMs: args['chunk-delay-ms'], unavailableRoutes: args['unavailable-route'] },
      ...(args.deterministic
        ? { deterministic: { jsonBytes: args['json-bytes'], streamChunks: args['stream-chunks'], chunkIntervalMs: args['chunk-interval-ms'] } }
        : {}),
    });
    const control =
      args['control-port'] === undefined
        ? undefined
        : await startSimControl(args['control-port'], {
            faults: { ...(evidence ? { attestation: evidence.faults } : {}), ...(pinaivu ? { pinaivu: pinaivu.faults } : {}), ...(near ? { near: near.faults } : {}) },
            ...(evidence ? { evidenceKind: evidence.kind } : {}),
            rotateTlsKey: () => sim.rotateTlsKey(),
            rotateReceiptKey: () => sim.rotateReceiptKey(),
            requests: () => ({ by_path: Object.fromEntries(sim.requestCounts), h2_by_path: Object.fromEntries(sim.h2RequestCounts), by_tls_key: Object.fromEntries(sim.requestsByTlsKey), recent: sim.recentRequests }),
          });
    if (args['cert-out']) await writeFile(args['cert-out'], sim.caPem);
    const written: string[] = [];
    if (args['write-dir']) {
      const dir = args['write-dir'];
      await mkdir(dir, { recursive: true });
      await writeFile(join(dir, 'sim-ca.pem'), sim.caPem);
      written.push('sim-ca.pem');
      if (evidence) {
        await writeFile(join(dir, 'release-root.pub'), evidence.releaseRoot.publicPem);
        written.push('release-root.pub');
      }
      const testRoots = simTestRootsPem({ evidence, aci, pinaivu, near });
      if (testRoots) {
        await writeFile(join(dir, TEST_ROOTS_FILE), testRoots);
        written.push(TEST_ROOTS_FILE);
      }
      if (aci?.tee === 'sev_snp') {
        await writeFile(join(dir, 'aci-ark.pem'), toPem(aci.pki.ark));
        written.push('aci-ark.pem');
      }
      if (aci?.intelRoot) {
        await writeFile(join(dir, 'intel-root.pem'), toPem(aci.intelRoot));
        written.push('intel-root.pem');
      }
      if (pinaivu) {
        await writeFile(join(dir, 'pinaivu-nitro-root.pem'), toPem(pinaivu.nitro.root));
        written.push('pinaivu-nitro-root.pem');
      }
      if (near) {
        await writeFile(join(dir, 'near-intel-root.pem'), toPem(near.pki.root));
        written.push('near-intel-root.pem');
      }
      if (evidence?.nitroPki) {
        await writeFile(join(dir, 'nitro-root.pem'), toPem(evidence.nitroPki.root));
        written.push('nitro-root.pem');
      }
    }
    process.stdout.write(
      `simulated router listening on ${sim.url}\n` +
        `TLS certificate SHA-256:  ${sim.fingerprint}\n` +
        `TLS SPKI SHA-256:         ${sim.spkiSha256}\n` +
        (args['cert-out'] ? `certificate written to:   ${args['cert-out']}\n` : '') +
        (evidence ? `evidence:                 ${evidence.kind} (${evidence.kind === 'snp' ? 'MEASUREMENT' : 'PCR0'} ${evidence.measurement})\n` : 'evidence:                 none (GET /attestation answers 503)\n') +
        (aci?.tee === 'sev_snp' ? `profile:                  aci (SEV-SNP MEASUREMENT ${aci.measurement}; test ARK in aci-ark.pem)\n` : '') +
        (aci?.tee === 'tdx'
          ? `profile:                  aci (TDX MRTD ${aci.mrtd}; test Intel root in intel-root.pem)\n` +
            `tdx RTMR0-2:              ${aci.rtmrs?.rtmr0} ${aci.rtmrs?.rtmr1} ${aci.rtmrs?.rtmr2}\n` +
            `tdx compose hash:         ${aci.composeHash}\n`
          : '') +
        (pinaivu ? `profile:                  pinaivu (coordinator PCR0 ${pinaivu.pcr0}; key ${pinaivu.coordinatorKey}; test Nitro root in pinaivu-nitro-root.pem)\n` : '') +
        (pinaivu && args['pinaivu-fault'].length ? `pinaivu faults:           ${args['pinaivu-fault'].join(', ')}\n` : '') +
        (near ? `profile:                  near (TDX MRTD ${near.mrtd}; test Intel root in near-intel-root.pem)\n` : '') +
        (near && args['near-fault'].length ? `near faults:              ${args['near-fault'].join(', ')}\n` : '') +
        (faults.length ? `attestation faults:       ${faults.join(', ')}\n` : '') +
        (evidence
          ? `trust bundle:             ${evidence.bundleUrl} version ${evidence.bundleVersion} (release-root key: the simulator's own test key${keys ? `, kept in ${args['keys-dir']}` : ', new on every start: use --keys-dir to keep it'})\n`
          : '') +
        (control ? `control port:             http://127.0.0.1:${control.port} (PUT /faults, POST /rotate-tls-key, POST /rotate-receipt-key)\n` : '') +
        (written.length ? `wrote ${written.join(', ')} to ${args['write-dir']}\n` : '') +
        (written.includes(TEST_ROOTS_FILE) ? `test roots:               ${join(args['write-dir'] as string, TEST_ROOTS_FILE)} (attestation.test_roots_file: the daemon refuses these roots without it)\n` : ''),
    );
    const stop = () => void Promise.all([sim.close(), control?.close()]).then(() => process.exit(0));
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  },
};
