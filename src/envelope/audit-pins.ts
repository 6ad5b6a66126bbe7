import type { KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { toTresorError } from '../errors/index.js';
import type { Certificate } from '../x509/certificate.js';
import { pinReverifier, readPin, reverifyPin } from './pin-verify.js';
import type { AuditBreak } from '../audit/verify.js';

/** One `attestation` record of the log and what re-checking its evidence found. */
export interface PinResult {
  evidence: string | null;
  upstream: string;
  profile: string;
  verified_at: string;
  seq: number;
  /** `verified`: re-verified at its own time and equal to its record; `skipped`: no --release-root (for a profile that needs one); `not archived`: the record names no evidence. */
  result: 'verified' | 'failed' | 'skipped' | 'not archived';
  code?: string;
}

export interface PinReport {
  pins: PinResult[];
  /** Receipt records that name their pin's evidence and agree with its record; that name none (archive off, another profile). */
  receipts: { matched: number; unlinked: number };
  /** Why the evidence itself was not re-verified (no release root), if it was not. */
  skipped?: string;
  breaks: AuditBreak[];
}

/** The summary fields a receipt record's `attestation` block shares with its pin's record, and must agree on. */
const SHARED = ['kind', 'measurement', 'tag', 'tls_spki_sha256', 'bundle_version', 'freshness', 'channel', 'test_roots'] as const;
/** What a pin's record must say as its evidence proves it. */
const PROVEN = ['upstream', 'profile', 'verified_at', 'expires_at', ...SHARED] as const;

const differing = (a: Record<string, unknown>, b: Record<string, unknown>, keys: readonly string[]) => keys.filter((k) => JSON.stringify(a[k]) !== JSON.stringify(b[k]));

/**
 * The evidence behind the log (docs/wire.md §7.2): every `attestation` record's archived evidence
 * is present and unedited and, with a release root, verifies again as of its own time to what the
 * record says; every receipt record that names a pin names one recorded before it, and its
 * attestation summary is that pin's. Every mismatch is a break with its code.
 */
export async function checkPins(files: readonly string[], o: { releaseRoot?: KeyObject | undefined; testRoots?: readonly Certificate[] | undefined }): Promise<PinReport> {
  const report: PinReport = { pins: [], receipts: { matched: 0, unlinked: 0 }, breaks: [] };
  const pins = new Map<string, Record<string, unknown>>();
  for (const file of files) {
    const lines = (await readFile(file, 'utf8')).split('\n');
    for (let i = 0; i < lines.length; i++) {
      let rec: Record<string, unknown>;
      try {
        rec = JSON.parse(lines[i] as string) as Record<string, unknown>;
      } catch {
        continue; // the chain check reports it
      }
      const brk = (code: string, message: string) => report.breaks.push({ file: basename(file), line: i + 1, code, message });
      if (rec?.type === 'attestation') {
        const pin = await checkPinRecord(rec, dirname(file), o, brk);
        report.pins.push(pin);
        if (pin.evidence) pins.set(pin.evidence, rec);
      } else if (rec?.type === 'receipt' && rec.attestation && typeof rec.attestation === 'object') {
        const a = rec.attestation as Record<string, unknown>;
        if (typeof a.evidence !== 'string') {
          if (a.tls_spki_sha256 !== undefined) report.receipts.unlinked++;
          continue;
        }
        const pin = pins.get(a.evidence);
        if (!pin) {
          brk('ERR_AUDIT_EVIDENCE_UNKNOWN', `the receipt record names pin ${a.evidence.slice(0, 16)}…, which no attestation record before it names`);
          continue;
        }
        const diff = [...differing(a, pin, SHARED), ...(rec.upstream !== pin.upstream ? ['upstream'] : [])];
        if (diff.length) brk('ERR_AUDIT_ATTESTATION_MISMATCH', `the receipt record's attestation differs from its pin ${a.evidence.slice(0, 16)}… (seq ${String(pin.seq)}) in ${diff.join(', ')}`);
        else report.receipts.matched++;
      }
    }
  }
  if (report.pins.some((p) => p.result === 'skipped')) report.skipped = 'no --release-root: the evidence of pins that need one was checked against its hashes only, not re-verified';
  return report;
}

/** One attestation record: its evidence read back and, with a release root, verified again and compared. */
async function checkPinRecord(rec: Record<string, unknown>, dir: string, o: Parameters<typeof checkPins>[1], brk: (code: string, message: string) => void): Promise<PinResult> {
  const id = typeof rec.evidence === 'string' ? rec.evidence : null;
  const base = { evidence: id, upstream: String(rec.upstream), profile: String(rec.profile), verified_at: String(rec.verified_at), seq: Number(rec.seq) };
  if (id === null) return { ...base, result: 'not archived' };
  const fail = (code: string, message: string): PinResult => {
    brk(code, message);
    return { ...base, result: 'failed', code };
  };
  const pin = await readPin(dir, id);
  if (!('doc' in pin)) return fail(pin.code, pin.message);
  const recorded = { upstream: pin.doc.upstream, profile: pin.doc.profile, verified_at: pin.doc.verified_at, test_roots: pin.doc.test_roots };
  const named = differing(recorded, rec, Object.keys(recorded));
  if (named.length) return fail('ERR_AUDIT_ATTESTATION_MISMATCH', `the attestation record differs from its pin document ${id.slice(0, 16)}… in ${named.join(', ')}`);
  const reverifier = pinReverifier(pin.doc.profile);
  if (!reverifier) return fail('ERR_AUDIT_EVIDENCE_UNSUPPORTED', `the evidence ${id.slice(0, 16)}… is of profile ${JSON.stringify(pin.doc.profile).slice(0, 40)}, which this tresor-verify cannot re-verify offline`);
  if (!o.releaseRoot && reverifier.needsReleaseRoot) return { ...base, result: 'skipped' };
  try {
    const v = reverifyPin(pin, o);
    const diff = differing(v.summary, rec, PROVEN);
    if (diff.length) return fail('ERR_AUDIT_ATTESTATION_MISMATCH', `the attestation record says other than its evidence ${id.slice(0, 16)}… proves, in ${diff.join(', ')}`);
    return { ...base, result: 'verified' };
  } catch (e) {
    const err = toTresorError(e);
    return fail('ERR_AUDIT_EVIDENCE_INVALID', `the evidence ${id.slice(0, 16)}… does not verify as of ${base.verified_at}: ${err.code}: ${err.message}`);
  }
}
