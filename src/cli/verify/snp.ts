import { readFileSync } from 'node:fs';
import type { Argv, CommandModule } from 'yargs';
import { UsageError } from '../../errors/index.js';
import { evaluateSnpPolicy, formatTcb, parseSnpReport, verifySnpReport, decodeTcb, type Product, type SnpKnobs, type SnpReport } from '../../evidence/snp/index.js';
import { fromHex, toHex } from '../../util/bytes.js';
import { parseCertificate, parsePemCertificates, type Certificate } from '../../x509/certificate.js';
import { decodeBinaryInput, parseAt, readInput } from '../input.js';
import { runCommand } from '../output.js';
import { parseCrl, type Crl } from '../../x509/crl.js';

/** The SEV-SNP policy flags `snp` and `attest` share (each names its `upstreams[].snp.*` config key). */
export interface SnpPolicyArgs {
  'min-tcb'?: string;
  'allow-migrate-ma': boolean;
  'allow-smt': boolean;
  'require-tsme': boolean;
  'allow-provisional-firmware': boolean;
  'min-launch-tcb'?: string;
  crl?: string;
}

interface SnpArgs extends SnpPolicyArgs {
  report: string;
  vcek: string;
  chain?: string;
  product?: Product;
  at?: string;
  measurement: string[];
  'report-data'?: string;
  'allow-debug': boolean;
  json: boolean;
}

export function snpPolicyOptions<T>(y: Argv<T>): Argv<T & SnpPolicyArgs> {
  return y
    .option('min-tcb', { type: 'string', describe: 'Minimum REPORTED_TCB: bl=2,tee=0,snp=5,ucode=68 or 16 hex digits (snp.min_tcb)' })
    .option('allow-migrate-ma', { type: 'boolean', default: false, describe: 'Accept POLICY.MIGRATE_MA guests (snp.allow_migrate_ma)' })
    .option('allow-smt', { type: 'boolean', default: true, describe: 'Accept SMT: POLICY.SMT, PLATFORM_INFO.SMT_EN (snp.allow_smt; --no-allow-smt refuses it)' })
    .option('require-tsme', { type: 'boolean', default: false, describe: 'Require PLATFORM_INFO.TSME_EN (snp.require_tsme)' })
    .option('allow-provisional-firmware', { type: 'boolean', default: false, describe: 'Accept CURRENT_TCB ≠ COMMITTED_TCB (snp.allow_provisional_firmware)' })
    .option('crl', { type: 'string', describe: "AMD's CRL for the product (DER, from KDS): the ASK must not be revoked (snp.crl_file)" })
    .option('min-launch-tcb', { type: 'string', describe: 'Minimum LAUNCH_TCB: bl=2,tee=0,snp=5,ucode=68 or 16 hex digits (snp.min_launch_tcb)' })
    .group(['min-tcb', 'allow-migrate-ma', 'allow-smt', 'require-tsme', 'allow-provisional-firmware', 'crl', 'min-launch-tcb'], 'SEV-SNP policy (as upstreams[].snp.*):') as unknown as Argv<T & SnpPolicyArgs>;
}

/** The knobs the flags ask for (TCB specs are read for the report's product when evaluated) and the CRL, read and parsed. */
export async function snpPolicyFromArgs(args: SnpPolicyArgs): Promise<{ knobs: SnpKnobs; crl?: Crl }> {
  const crl = args.crl ? parseCrl(await readInput(args.crl, 1024 * 1024), '--crl', 'ERR_SNP_CRL_MALFORMED') : undefined;
  return {
    knobs: {
      allowMigrateMa: args['allow-migrate-ma'],
      allowSmt: args['allow-smt'],
      requireTsme: args['require-tsme'],
      allowProvisionalFirmware: args['allow-provisional-firmware'],
      ...(args['min-tcb'] ? { minTcb: args['min-tcb'] } : {}),
      ...(args['min-launch-tcb'] ? { minLaunchTcb: args['min-launch-tcb'] } : {}),
    },
    ...(crl ? { crl } : {}),
  };
}

function readCert(path: string, what: string): Certificate {
  let data: Buffer;
  try {
    data = readFileSync(path);
  } catch (e) {
    throw new UsageError('ERR_USAGE_INPUT_UNREADABLE', `${what}: cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  const text = data.toString('latin1');
  if (text.includes('-----BEGIN CERTIFICATE-----')) {
    const [first] = parsePemCertificates(text, path);
    if (first) return first;
  }
  return parseCertificate(new Uint8Array(data), path);
}

function fields(r: SnpReport, product: Product | undefined) {
  return {
    version: r.VERSION,
    measurement: toHex(r.MEASUREMENT),
    report_data: toHex(r.REPORT_DATA),
    policy: `0x${r.POLICY.toString(16)}`,
    debug: r.policy.debug,
    vmpl: r.VMPL,
    reported_tcb: toHex(r.REPORTED_TCB),
    ...(product ? { reported_tcb_decoded: decodeTcb(r.REPORTED_TCB, product) } : {}),
    chip_id: toHex(r.CHIP_ID),
    host_data: toHex(r.HOST_DATA),
    signing_key: r.SIGNING_KEY,
    firmware: r.firmware.current,
    ...(r.CPUID ? { cpuid: r.CPUID } : {}),
  };
}

export const snpCommand: CommandModule<object, SnpArgs> = {
  command: 'snp <report>',
  describe: 'Verify an AMD SEV-SNP attestation report (1184 bytes; raw, base64 or hex; - for stdin)',
  builder: (y: Argv) =>
    snpPolicyOptions(
      y
        .positional('report', { type: 'string', demandOption: true, describe: 'The report, or - for standard input' })
        .option('vcek', { type: 'string', demandOption: true, describe: 'The VCEK (or VLEK) certificate, PEM or DER' })
        .option('chain', { type: 'string', describe: 'ASK (or ASVK for a VLEK), and optionally ARK, PEM supplied with the report; the chain must end at a pinned AMD ARK (certs/)' })
        .option('product', { choices: ['milan', 'genoa', 'turin'] as const, describe: 'Product line (default: from the VCEK, then CPUID)' })
        .option('at', { type: 'string', describe: 'Verify at this ISO 8601 time (default: now)' })
        .option('measurement', { type: 'string', array: true, default: [], describe: 'Allowed MEASUREMENT (hex, repeatable)' })
        .option('report-data', { type: 'string', describe: 'Expected REPORT_DATA: 64 bytes, or 32 bytes for [0:32] (hex)' })
        .option('allow-debug', { type: 'boolean', default: false, describe: 'Accept POLICY.DEBUG guests' })
        .option('json', { type: 'boolean', default: false, describe: 'Print one JSON object' }),
    ) as unknown as Argv<SnpArgs>,
  handler: (args) => {
    let decoded: ReturnType<typeof fields> | undefined;
    return runCommand(
      args.json,
      async () => {
        const at = parseAt(args.at) ?? new Date();
        const vcek = readCert(args.vcek, '--vcek');
        const chain = args.chain ? parsePemCertificates(readFileSync(args.chain, 'utf8'), args.chain) : undefined;
        const report = parseSnpReport(decodeBinaryInput(await readInput(args.report)));
        decoded = fields(report, args.product);
        const { knobs, crl } = await snpPolicyFromArgs(args);
        // --chain supplies intermediates (ASK, or a VLEK's ASVK); the path must still end at a pinned AMD ARK.
        const verified = verifySnpReport(report, { vcek, at, ...(args.product ? { product: args.product } : {}), ...(chain ? { chain } : {}), ...(crl ? { crl } : {}) });
        decoded = fields(report, verified.product);
        const rd = args['report-data'] ? fromHex(args['report-data'], { field: '--report-data' }) : undefined;
        if (rd && rd.length !== 64 && rd.length !== 32) throw new UsageError('ERR_USAGE_BAD_REPORT_DATA', '--report-data: expected 32 or 64 bytes of hex');
        evaluateSnpPolicy(verified, {
          measurements: args.measurement.map((m) => m.toLowerCase()),
          ...(rd?.length === 64 ? { reportData: rd } : rd ? { reportDataPrefix: rd } : {}),
          ...knobs,
          allowDebug: args['allow-debug'],
        });
        return {
          fields: { ...decoded, product: verified.product },
          lines: [
            ['SNP MEASUREMENT', decoded.measurement],
            ['REPORT_DATA', decoded.report_data],
            ['REPORTED_TCB', `${decoded.reported_tcb} (${formatTcb(verified.reportedTcb)})`],
            ['POLICY', `${decoded.policy}${report.policy.debug ? ' (DEBUG)' : ''}${report.policy.smt ? ' (SMT allowed)' : ''}${report.policy.migrateMa ? ' (MIGRATE_MA)' : ''}`],
            ['PLATFORM_INFO', `SMT ${report.platformInfo.smtEnabled ? 'enabled' : 'off'}, TSME ${report.platformInfo.tsmeEnabled ? 'enabled' : 'off'}`],
            ['VMPL', String(report.VMPL)],
            ['CHIP_ID', decoded.chip_id],
            ['Product', verified.product],
          ],
        };
      },
      () => decoded,
    );
  },
};
