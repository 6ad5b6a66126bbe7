import type { Argv, CommandModule } from 'yargs';
import { UsageError } from '../../errors/index.js';
import {
  evaluateTdxPolicy,
  loadIntelSgxRoots,
  parseTdxCollateral,
  parseTdxQuote,
  TCB_STATUSES,
  verifyTdxQuote,
  type TcbStatus,
  type TdxPolicy,
  type TdxQuote,
} from '../../evidence/tdx/index.js';
import { toHex } from '../../util/bytes.js';
import { decodeBinaryInput, parseAt, readInput } from '../input.js';
import { runCommand } from '../output.js';

/** The TDX policy flags, shared by the commands that verify TDX quotes (same names as the `tdx.*` config keys). */
export interface TdxPolicyArgs {
  collateral?: string;
  'allow-tcb-status'?: string[];
  'min-tcb-evaluation-data-number'?: number;
  'block-advisory'?: string[];
  'allow-sept-ve': boolean;
  'allow-debug': boolean;
}

interface TdxArgs extends TdxPolicyArgs {
  quote: string;
  at?: string;
  json: boolean;
}

const ALLOWABLE = TCB_STATUSES.filter((s) => s !== 'Revoked');

export function tdxPolicyOptions<T>(y: Argv<T>): Argv<T & TdxPolicyArgs> {
  return y
    .option('collateral', { type: 'string', describe: 'Intel DCAP collateral (QuoteCollateralV3 JSON) to evaluate the TCB status with (tdx.collateral_file)' })
    .option('allow-tcb-status', { type: 'string', array: true, choices: ALLOWABLE, describe: 'TCB statuses to accept with --collateral (tdx.allowed_tcb_statuses; default UpToDate)' })
    .option('min-tcb-evaluation-data-number', { type: 'number', describe: 'Minimum tcbEvaluationDataNumber of the collateral (tdx.min_tcb_evaluation_data_number)' })
    .option('block-advisory', { type: 'string', array: true, describe: 'Refuse a platform whose TCB level lists this INTEL-SA id (tdx.blocked_advisories)' })
    .option('allow-sept-ve', { type: 'boolean', default: false, describe: 'Accept a TD without TDATTRIBUTES.SEPT_VE_DISABLE (tdx.allow_sept_ve)' })
    .option('allow-debug', { type: 'boolean', default: false, describe: 'Accept a debug TD (attestation.allow_debug; never in production)' }) as unknown as Argv<T & TdxPolicyArgs>;
}

/** The collateral (read and parsed) and the policy the flags ask for. */
export async function tdxPolicyFromArgs(args: TdxPolicyArgs): Promise<{ collateral?: ReturnType<typeof parseTdxCollateral>; policy: TdxPolicy }> {
  const min = args['min-tcb-evaluation-data-number'];
  if (min !== undefined && (!Number.isInteger(min) || min < 0)) throw new UsageError('ERR_USAGE_BAD_FLAG', `--min-tcb-evaluation-data-number: expected a non-negative integer, got ${min}`);
  const collateral = args.collateral === undefined ? undefined : parseTdxCollateral(Buffer.from(await readInput(args.collateral, 4 * 1024 * 1024)).toString('utf8'));
  return {
    ...(collateral ? { collateral } : {}),
    policy: {
      allowDebug: args['allow-debug'],
      allowSeptVe: args['allow-sept-ve'],
      ...(args['allow-tcb-status'] ? { allowedTcbStatuses: args['allow-tcb-status'] as TcbStatus[] } : {}),
      ...(min !== undefined ? { minTcbEvaluationDataNumber: min } : {}),
      ...(args['block-advisory'] ? { blockedAdvisories: args['block-advisory'] } : {}),
    },
  };
}

function fields(q: TdxQuote) {
  return {
    version: q.version,
    tee_type: 'tdx',
    qe_vendor_id: q.qeVendorId,
    td_attributes: toHex(q.body.tdAttributes),
    xfam: toHex(q.body.xfam),
    mrtd: toHex(q.body.mrTd),
    rtmr0: toHex(q.body.rtmr0),
    rtmr1: toHex(q.body.rtmr1),
    rtmr2: toHex(q.body.rtmr2),
    rtmr3: toHex(q.body.rtmr3),
    report_data: toHex(q.body.reportData),
    mr_seam: toHex(q.body.mrSeam),
    tee_tcb_svn: toHex(q.body.teeTcbSvn),
    ...(q.body.mrServiceTd ? { mr_service_td: toHex(q.body.mrServiceTd), tee_tcb_svn2: toHex(q.body.teeTcbSvn2 as Uint8Array) } : {}),
    qe_mrsigner: toHex(q.qeReportBody.mrSigner),
    qe_isvprodid: q.qeReportBody.isvProdId,
    qe_isvsvn: q.qeReportBody.isvSvn,
    quote_length: q.quoteLength,
  };
}

export const tdxCommand: CommandModule<object, TdxArgs> = {
  command: 'tdx <quote>',
  describe: 'Verify an Intel TDX quote (v4 or v5) to the pinned Intel SGX root, its Quoting Enclave, and with --collateral its TCB status (raw, base64 or hex; - for stdin)',
  builder: (y: Argv) =>
    tdxPolicyOptions(
      y
        .positional('quote', { type: 'string', demandOption: true, describe: 'The quote, or - for standard input' })
        .option('at', { type: 'string', describe: 'Verify the PCK chain and the collateral at this ISO 8601 time (default: now)' })
        .option('json', { type: 'boolean', default: false, describe: 'Print one JSON object' }),
    ) as unknown as Argv<TdxArgs>,
  handler: (args) =>
    runCommand(args.json, async () => {
      const at = parseAt(args.at) ?? new Date();
      const quote = parseTdxQuote(decodeBinaryInput(await readInput(args.quote)));
      const { collateral, policy } = await tdxPolicyFromArgs(args);
      const verified = verifyTdxQuote(quote, { at, roots: loadIntelSgxRoots(), ...(collateral ? { collateral } : {}) });
      const report = evaluateTdxPolicy(verified, policy);
      const tcb = verified.tcb;
      const f = {
        ...fields(verified),
        tcb_status: report.tcbStatus,
        ...(tcb ? { advisory_ids: tcb.advisoryIds, tcb_evaluation_data_number: tcb.tcbEvaluationDataNumber, fmspc: tcb.fmspc, tcb_date: tcb.tcbDate, qe_tcb_status: tcb.qeStatus, ...(tcb.tdxModuleStatus ? { tdx_module_tcb_status: tcb.tdxModuleStatus } : {}) } : {}),
        pck_chain: verified.pckChain.map((c) => c.subject),
      };
      return {
        lines: [
          ['TEE', `Intel TDX (quote v${verified.version}${verified.version === 5 ? `, body type ${verified.bodyType}` : ''}, ECDSA-P256)`],
          ['MRTD', f.mrtd],
          ['RTMR0', f.rtmr0],
          ['RTMR1', f.rtmr1],
          ['RTMR2', f.rtmr2],
          ['RTMR3', f.rtmr3],
          ['REPORTDATA', f.report_data],
          ['TD attributes', `${f.td_attributes} (debug ${(verified.body.tdAttributes[0] as number) & 1 ? 'ON' : 'off'})`],
          ['PCK chain', 'Intel SGX Root CA (pinned)'],
          ['Quoting Enclave', `MRSIGNER ${f.qe_mrsigner}, ISVPRODID ${f.qe_isvprodid}, ISVSVN ${f.qe_isvsvn} (${tcb ? "Intel's signed QE identity" : "Intel's production TD QE, pinned"})`],
          ...(tcb
            ? ([
                ['TCB status', `${tcb.status} (FMSPC ${tcb.fmspc}, tcbEvaluationDataNumber ${tcb.tcbEvaluationDataNumber}, TCB date ${tcb.tcbDate})`],
                ['Advisories', tcb.advisoryIds.length > 0 ? tcb.advisoryIds.join(', ') : 'none'],
              ] as [string, string][])
            : ([['TCB status', 'unknown (no Intel collateral given: --collateral)']] as [string, string][])),
        ],
        fields: f,
      };
    }),
};
