import { hash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { GroupAppender, type DurabilityOptions } from '../util/appender.js';
import { dayOf } from './format.js';

/**
 * The raw receipt JWS archive beside the audit log (docs/wire.md §7): one JSON Lines file per
 * UTC day, `receipts-YYYYMMDD.jsonl`, each line `{"sha256": <hex of the JWS>, "jws": <JWS>}`.
 * (SHA-256 over the UTF-8 text: a JWS is ASCII, an ACI or Pinaivu document may not be.)
 * Audit records name their receipt by that hash, so any verdict can be re-checked offline.
 * File names never contain router-supplied values.
 */
export const ARCHIVE_RE = /^receipts-(\d{8})\.jsonl$/;

/** One-shot (no Hash object per receipt: 6.8 -> 6.1 us for an 8 KB JWS); a string is hashed as UTF-8. */
export const jwsSha256 = (jws: string) => hash('sha256', jws, 'hex');

export class ReceiptArchive {
  private day = '';
  private appender: GroupAppender | undefined;
  /** Earlier days' files: left open until close, so that receipts held there (disk full) are still written. */
  private readonly earlier: GroupAppender[] = [];

  /** `commitWindowMs`: how long a non-urgent put may wait for others to share its fdatasync (default 0). */
  constructor(
    private readonly dir: string,
    private readonly o: { commitWindowMs?: number } & DurabilityOptions = {},
  ) {}

  /**
   * Durably archive `jws`; returns its hash (`sha256`: the caller's jwsSha256(jws), not computed
   * twice). `urgent: false` lets it wait up to the commit window; `verbatim`: see archiveLine.
   */
  async put(jws: string, at: Date, sha256 = jwsSha256(jws), opts: { urgent?: boolean; verbatim?: string | undefined } = {}): Promise<string> {
    const day = dayOf(at);
    if (day !== this.day || !this.appender) {
      if (this.appender) this.earlier.push(this.appender);
      this.day = day;
      this.appender = new GroupAppender(join(this.dir, `receipts-${day}.jsonl`), { ...this.o, source: 'archive' });
    }
    await this.appender.append(archiveLine(sha256, jws, opts.verbatim), opts);
    return sha256;
  }

  /** Receipts appended and not yet durable (held while writing fails). */
  get held(): number {
    return [this.appender, ...this.earlier].reduce((n, a) => n + (a?.held ?? 0), 0);
  }

  async close(): Promise<void> {
    for (const a of this.earlier.splice(0)) await a.close();
    await this.appender?.close();
  }
}

/** Printable ASCII without `"` and `\`: JSON writes such a string as it is, between quotes. */
const VERBATIM_IN_JSON = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

/**
 * The archive line, `JSON.stringify({ sha256, jws })` byte for byte; a JWS (base64url and dots)
 * goes in as a part of its own instead of into a ~8 KB concatenated copy. `verbatim`: the text
 * the receipt's parse proved to be base64url segments and dots (util/jws.ts ParsedJws.verbatim);
 * when it is `jws` itself, the regex over ~8 KB (4.5 µs) is not run again. Any other JWS is checked.
 */
export function archiveLine(sha256: string, jws: string, verbatim?: string): string | string[] {
  const line = JSON.stringify({ sha256, jws: '' });
  return verbatim === jws || VERBATIM_IN_JSON.test(jws) ? [line.slice(0, -2), jws, line.slice(-2)] : JSON.stringify({ sha256, jws });
}

/** Every archived JWS in `dir`, by hash. Lines whose hash does not match their JWS are left out. */
export async function readArchive(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const files = (await readdir(dir).catch(() => [] as string[])).filter((f) => ARCHIVE_RE.test(f)).sort();
  for (const f of files) {
    for (const line of (await readFile(join(dir, f), 'utf8')).split('\n')) {
      if (!line) continue;
      try {
        const { sha256, jws } = JSON.parse(line) as { sha256?: unknown; jws?: unknown };
        if (typeof sha256 === 'string' && typeof jws === 'string' && jwsSha256(jws) === sha256) out.set(sha256, jws);
      } catch {
        /* a torn line */
      }
    }
  }
  return out;
}
