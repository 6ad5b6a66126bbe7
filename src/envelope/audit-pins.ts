import type { KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { toTresorError } from '../errors/index.js';
import type { Certificate } from '../x509/certificate.js';
import { pinReverifier, readPin, reverifyPin } from './pin-verify.js';
import { readArchive } from '../audit/archive.js';
import { parseJws } from '../util/jws.js';
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
  /**
   * Receipt records that name their pin's evidence and agree with its record; that name none
   * (archive off, a profile not captured); of the matched, those whose archived receipt's signed
   * `router_attestation` was checked to bind the pin's TLS key, and of those the ones issued after
   * the router rotated to a key pinned later than the connection's (`rotated`).
   */
  receipts: { matched: number; unlinked: number; cross_checked: number; rotated: number };
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
 * record says (a profile that needs a release root only when given one); every receipt record that
 * names a pin names one recorded before it, its attestation summary is that pin's and, for
 * `tresor`, its signed receipt's router_attestation agrees; an upstream's bundle versions never go
 * down across its pins. Every mismatch is a break with its code.
 */
export async function checkPins(files: readonly string[], o: { releaseRoot?: KeyObject | undefined; testRoots?: readonly Certificate[] | undefined }): Promise<PinReport> {
  const report: PinReport = { pins: [], receipts: { matched: 0, unlinked: 0, cross_checked: 0, rotated: 0 }, breaks: [] };
  const pins = new Map<string, Record<string, unknown>>();
  const bundles = new Map<string, { version: number; seq: number }>();
  const archives = new Map<string, Promise<Map<string, string>>>();
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
        checkBundleVersion(rec, bundles, brk);
      } else if (rec?.type === 'receipt' && rec.attestation && typeof rec.attestation === 'object') {
        const dir = dirname(file);
        if (!archives.has(dir)) archives.set(dir, readArchive(dir));
        await checkReceiptRecord(rec, pins, archives.get(dir) as Promise<Map<string, string>>, report.receipts, brk);
      }
    }
  }
  if (report.pins.some((p) => p.result === 'skipped')) report.skipped = 'no --release-root: the evidence of pins that need one was checked against its hashes only, not re-verified';
  return report;
}

type Brk = (code: string, message: string) => void;

/**
 * The rollback rule offline: across the log, the trust bundle versions of one upstream's
 * successive pins never go down (the daemon's rollback store, which also remembers versions
 * accepted before the log began, is not archived).
 */
function checkBundleVersion(rec: Record<string, unknown>, seen: Map<string, { version: number; seq: number }>, brk: Brk): void {
  if (typeof rec.bundle_version !== 'number') return;
  const upstream = String(rec.upstream);
  const prior = seen.get(upstream);
  if (prior && rec.bundle_version < prior.version) {
    brk('ERR_AUDIT_BUNDLE_ROLLBACK', `the pin of upstream ${upstream.slice(0, 64)} at seq ${String(rec.seq)} was verified against trust bundle version ${rec.bundle_version}, older than version ${prior.version} of its pin at seq ${prior.seq}: a rollback`);
    return;
  }
  seen.set(upstream, { version: rec.bundle_version, seq: Number(rec.seq) });
}

/**
 * A receipt record that names a pin: the pin was recorded before it, its attestation summary is
 * that pin's, and (a `tresor` pin) the router_attestation the router embedded in the signed
 * receipt (its archived JWS) binds the pin's TLS key, or one the router rotated to after that pin
 * (a later pin of the same upstream recorded before the receipt record).
 */
async function checkReceiptRecord(rec: Record<string, unknown>, pins: ReadonlyMap<string, Record<string, unknown>>, archive: Promise<Map<string, string>>, counts: PinReport['receipts'], brk: Brk): Promise<void> {
  const a = rec.attestation as Record<string, unknown>;
  if (typeof a.evidence !== 'string') {
    if (a.tls_spki_sha256 !== undefined) counts.unlinked++;
    return;
  }
  const pin = pins.get(a.evidence);
  if (!pin) return brk('ERR_AUDIT_EVIDENCE_UNKNOWN', `the receipt record names pin ${a.evidence.slice(0, 16)}…, which no attestation record before it names`);
  const diff = [...differing(a, pin, SHARED), ...(rec.upstream !== pin.upstream ? ['upstream'] : [])];
  if (diff.length) return brk('ERR_AUDIT_ATTESTATION_MISMATCH', `the receipt record's attestation differs from its pin ${a.evidence.slice(0, 16)}… (seq ${String(pin.seq)}) in ${diff.join(', ')}`);
  counts.matched++;
  // Only where the daemon's own check of the block passed (else the verdict already says why).
  const checked = Array.isArray(rec.checks) && (rec.checks as { name?: unknown; result?: unknown }[]).some((c) => c?.name === 'router_attestation' && c.result === 'pass');
  const jws = checked && pin.profile === 'tresor' && typeof rec.receipt_jws_sha256 === 'string' ? (await archive).get(rec.receipt_jws_sha256) : undefined;
  const bound = jws === undefined ? undefined : routerAttestationSpki(jws);
  if (bound === undefined) return;
  counts.cross_checked++;
  if (bound === pin.tls_spki_sha256) return;
  // The router attests its key at issuance: an exchange that ran over the named pin's connection
  // while the router rotated to a key pinned later (recorded before this record) carries that key.
  const rotatedTo = [...pins.values()].find((p) => p.upstream === pin.upstream && p.tls_spki_sha256 === bound && Date.parse(String(p.verified_at)) > Date.parse(String(pin.verified_at)));
  if (rotatedTo) {
    counts.rotated++;
    return;
  }
  brk('ERR_AUDIT_ATTESTATION_MISMATCH', `the router_attestation in the receipt's signed JWS binds TLS key ${bound.slice(0, 16)}…, neither the key ${String(pin.tls_spki_sha256).slice(0, 16)}… of the pin ${a.evidence.slice(0, 16)}… (seq ${String(pin.seq)}) its record names nor one the router rotated to after it: that pin was not the connection's`);
}

/** Bound on an archived receipt parsed here (the daemon accepts receipts of at most 256 KiB). */
const MAX_ARCHIVED_JWS_BYTES = 256 * 1024;

/** The TLS SPKI SHA-256 a receipt JWS's `router_attestation` envelope binds, if it carries one. */
function routerAttestationSpki(jws: string): string | undefined {
  try {
    const ra = parseJws(jws, { code: 'ERR_RECEIPT_MALFORMED', maxBytes: MAX_ARCHIVED_JWS_BYTES, what: 'receipt JWS' }).payload.router_attestation as Record<string, unknown> | undefined;
    return typeof ra?.tls_spki_sha256 === 'string' ? ra.tls_spki_sha256.toLowerCase() : undefined;
  } catch {
    return undefined; // --jwks-file re-verifies the archived receipts and reports a malformed one
  }
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
    const v = await reverifyPin(pin, o);
    const diff = differing(v.summary, rec, PROVEN);
    if (diff.length) return fail('ERR_AUDIT_ATTESTATION_MISMATCH', `the attestation record says other than its evidence ${id.slice(0, 16)}… proves, in ${diff.join(', ')}`);
    return { ...base, result: 'verified' };
  } catch (e) {
    const err = toTresorError(e);
    return fail('ERR_AUDIT_EVIDENCE_INVALID', `the evidence ${id.slice(0, 16)}… does not verify as of ${base.verified_at}: ${err.code}: ${err.message}`);
  }
}
