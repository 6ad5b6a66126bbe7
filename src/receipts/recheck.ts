import { readFile } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { toTresorError } from '../errors/index.js';
import { parseDigest } from './digest.js';
import type { KeyResolver } from './jws.js';
import { evaluateReceipt } from './verdict.js';
import { verifyReceiptJws } from './verify.js';
import { readArchive } from '../audit/archive.js';
import type { AuditBreak } from '../audit/verify.js';

export interface RecheckReport {
  /** Records whose archived receipt was re-verified. */
  checked: number;
  /** Recorded `verified` whose receipt re-verified offline. */
  confirmed: number;
  breaks: AuditBreak[];
}

const digestBytes = (v: unknown) => {
  const d = parseDigest(v);
  return d.ok ? d.bytes : undefined;
};

/**
 * Re-verify archived receipts offline (docs/wire.md §7): every record that names a
 * `receipt_jws_sha256` must find that JWS in the archive beside the log, and a record that says
 * `verified` must still verify with the given keys, against the record's own receipt id, routes
 * and computed digests. Embedded attestation is not re-checked here (it needs the trust bundle).
 */
export async function recheckArchivedReceipts(files: readonly string[], resolveKey: KeyResolver): Promise<RecheckReport> {
  const report: RecheckReport = { checked: 0, confirmed: 0, breaks: [] };
  const archives = new Map<string, Map<string, string>>();
  for (const file of files) {
    const dir = dirname(file);
    if (!archives.has(dir)) archives.set(dir, await readArchive(dir));
    const archive = archives.get(dir) as Map<string, string>;
    const lines = (await readFile(file, 'utf8')).split('\n');
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i] as string;
      if (!line) continue;
      let rec: Record<string, unknown>;
      try {
        rec = JSON.parse(line) as Record<string, unknown>;
      } catch {
        continue; // the chain check reports it
      }
      const sha = rec.receipt_jws_sha256;
      if (typeof sha !== 'string') continue;
      const brk = (code: string, message: string) => report.breaks.push({ file: basename(file), line: i + 1, code, message });
      const jws = archive.get(sha);
      if (!jws) {
        brk('ERR_AUDIT_RECEIPT_MISSING', `the archived receipt ${sha.slice(0, 16)}… is not in the archive beside the log`);
        continue;
      }
      report.checked++;
      // Only Tresor JWS receipts can be re-checked with a JWKS (ACI documents need their keyset).
      if (rec.verdict !== 'verified' || (rec.receipt_format !== undefined && rec.receipt_format !== 'jws')) continue;
      const digests = rec.digests as { request?: { computed?: unknown }; response?: { computed?: unknown } } | undefined;
      try {
        const verified = await verifyReceiptJws(jws, { resolveKey });
        const req = digestBytes(digests?.request?.computed);
        const res = digestBytes(digests?.response?.computed);
        const v = await evaluateReceipt(verified, {
          ...(typeof rec.receipt_id === 'string' ? { receiptId: rec.receipt_id } : {}),
          tresor: { requested_route: rec.route_requested, routed_model: rec.route_served, failover: rec.failover },
          ...(req ? { requestSha256: req } : {}),
          ...(res ? { responseSha256: res } : {}),
        });
        if (v.verdict === 'failed') brk('ERR_AUDIT_VERDICT_MISMATCH', `recorded verified, but the archived receipt fails ${v.code}`);
        else report.confirmed++;
      } catch (e) {
        const err = toTresorError(e);
        brk('ERR_AUDIT_VERDICT_MISMATCH', `recorded verified, but the archived receipt does not verify: ${err.code}`);
      }
    }
  }
  return report;
}
