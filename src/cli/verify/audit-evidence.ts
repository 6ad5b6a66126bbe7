import type { KeyObject } from 'node:crypto';
import { dirname } from 'node:path';
import { UsageError, VerificationError } from '../../errors/index.js';
import { collectAuditFiles } from '../../audit/verify.js';
import type { PinReport, PinResult } from '../../envelope/audit-pins.js';
import { pinReverifier, readPin, reverifyPin } from '../../envelope/pin-verify.js';
import { loadReleaseRootKey } from '../../trust/release-root.js';
import { parsePemCertificates, type Certificate } from '../../x509/certificate.js';
import { readFlagFile } from '../input.js';
import { runCommand } from '../output.js';

export interface EvidenceArgs {
  'release-root'?: string;
  'test-roots'?: string;
  evidence?: string;
  json: boolean;
}

/**
 * The release root and test roots named by `--release-root` and `--test-roots` (test roots only
 * when given; alone they serve the pins of profiles that need no release root, e.g. `pinaivu`).
 */
export async function trustArgs(args: EvidenceArgs): Promise<{ releaseRoot?: KeyObject; testRoots?: Certificate[] }> {
  return {
    ...(args['release-root'] ? { releaseRoot: loadReleaseRootKey(await readFlagFile(args['release-root'], '--release-root')) } : {}),
    ...(args['test-roots'] ? { testRoots: parsePemCertificates((await readFlagFile(args['test-roots'], '--test-roots')).toString('utf8'), '--test-roots') } : {}),
  };
}

/** The `Receipts:` line of `--jwks-file`: archived receipts re-verified offline. */
export const receiptsLine = (r: { checked: number; confirmed: number }) => `Receipts: ${r.checked} archived, ${r.confirmed} verified records re-verified offline\n`;

/** The `Pins:` summary and one `pin ...` line per attestation record. */
export function pinLines(r: PinReport): string {
  const count = (s: PinResult['result']) => r.pins.filter((p) => p.result === s).length;
  const lines = [
    `Pins:     ${r.pins.length} attestation record(s): ${count('verified')} re-verified at their own time, ${count('failed')} failed, ${count('skipped')} checked against their hashes only, ${count('not archived')} without archived evidence`,
    ...(r.skipped ? [`          (${r.skipped})`] : []),
    `Linked:   ${r.receipts.matched} receipt record(s) name their pin and agree with it (${r.receipts.cross_checked} also checked against the router_attestation in their archived receipt, ${r.receipts.rotated} of them issued after a key rotation); ${r.receipts.unlinked} name no archived pin`,
    ...r.pins.map((p) => `pin ${p.evidence ?? '(none)'} seq ${p.seq} ${p.upstream} ${p.profile} ${p.verified_at}: ${p.result}${p.code ? ` ${p.code}` : ''}`),
  ];
  return `${lines.join('\n')}\n`;
}

/**
 * `tresor-verify audit DIR --evidence ID`: one archived pin verified again at its own time,
 * printed like `tresor-verify attest` prints a live router.
 */
export async function evidenceAudit(paths: readonly string[], args: EvidenceArgs & { evidence: string }): Promise<void> {
  await runCommand(args.json, async () => {
    const { releaseRoot, testRoots } = await trustArgs(args);
    const files = await collectAuditFiles(paths).catch(() => [] as string[]);
    if (files.length === 0) throw new UsageError('ERR_USAGE_NO_AUDIT_FILES', 'no audit files found');
    const pin = await readPin(dirname(files[0] as string), args.evidence);
    if (!('doc' in pin)) throw new VerificationError(pin.code, pin.message);
    if (!releaseRoot && pinReverifier(pin.doc.profile)?.needsReleaseRoot) {
      throw new UsageError('ERR_USAGE_BAD_FLAG', `--evidence needs --release-root for a ${pin.doc.profile} pin: the pinned release-root key the trust bundle must be signed by`);
    }
    const v = await reverifyPin(pin, { releaseRoot, testRoots, testRootsLabel: args['test-roots'] });
    const lines: [string, string][] = [['Evidence', pin.id], ['Upstream', `${pin.doc.upstream} (profile ${pin.doc.profile})`], ['Verified at', pin.doc.verified_at], ...v.described.lines];
    if (v.notRechecked.length) lines.push(['Not re-checked', v.notRechecked.join('; ')]);
    return { gap: 1, lines, fields: { evidence: pin.id, upstream: pin.doc.upstream, profile: pin.doc.profile, verified_at: pin.doc.verified_at, ...v.described.fields, not_rechecked: v.notRechecked } };
  });
}
