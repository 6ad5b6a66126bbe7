import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileDurably } from '../util/durable-file.js';
import { auditFiles } from './recover.js';

/**
 * The evidence archive beside the audit log (docs/wire.md §7.2): `evidence/<sha256>`, one file per
 * blob, named by the SHA-256 (lowercase hex) of its exact bytes. A pin's evidence is a JSON pin
 * document (the profile, upstream, time of verification, the nonce we sent, the TLS certificate
 * chain, the policy applied) naming its parts by hash: the envelope (or report, quote, document)
 * exactly as received, the trust bundle JWS. The pin document's hash is the evidence id that the
 * `attestation` record and every receipt record made under that pin name. Parts shared by many
 * pins (a day's bundle) are stored once. File names never contain router-supplied values.
 */
export const EVIDENCE_DIR = 'evidence';
export const PIN_FORMAT = 'tresor-attest.pin/v1';
/** An evidence id (and any blob's name): SHA-256, 64 lowercase hex. */
export const ID_RE = /^[0-9a-f]{64}$/;

export const blobSha256 = (bytes: Uint8Array | string) => createHash('sha256').update(bytes).digest('hex');

/** What an attester captured: the parts as received, and the fields needed to re-verify them. */
export interface PinEvidence {
  /** `tresor`, `aci`, ... */
  readonly profile: string;
  /** Parts by role (`envelope`, `trust_bundle`), as received. */
  readonly blobs: Readonly<Record<string, Uint8Array | string>>;
  /** The nonce we sent (hex), if any. */
  readonly nonce?: string | undefined;
  /** The upstream's TLS certificate chain as presented, leaf first (DER, base64). */
  readonly tlsChain: readonly string[];
  /** The verification policy applied (data: re-applied by `tresor-verify audit`). */
  readonly policy: Readonly<Record<string, unknown>>;
}

/** A pin document: what `evidence/<id>` holds for a pin. */
export interface PinDocument {
  format: typeof PIN_FORMAT;
  profile: string;
  upstream: string;
  verified_at: string;
  nonce: string | null;
  tls_chain_der_b64: string[];
  policy: Record<string, unknown>;
  test_roots: boolean;
  /** SHA-256 of each part, by role. */
  blobs: Record<string, string>;
}

/** The pin document's bytes and parts for `ev`; its id is the SHA-256 of `bytes`. */
export function pinDocument(ev: PinEvidence, o: { upstream: string; verifiedAt: string; testRoots: boolean }): { id: string; bytes: Buffer; parts: (Uint8Array | string)[] } {
  const parts = Object.values(ev.blobs);
  const doc: PinDocument = {
    format: PIN_FORMAT,
    profile: ev.profile,
    upstream: o.upstream,
    verified_at: o.verifiedAt,
    nonce: ev.nonce ?? null,
    tls_chain_der_b64: [...ev.tlsChain],
    policy: { ...ev.policy },
    test_roots: o.testRoots,
    blobs: Object.fromEntries(Object.entries(ev.blobs).map(([k, v]) => [k, blobSha256(v)])),
  };
  const bytes = Buffer.from(JSON.stringify(doc), 'utf8');
  return { id: blobSha256(bytes), bytes, parts };
}

/**
 * Writes blobs durably: to a temporary file, fdatasync, rename to its hash, fsync the directory.
 * A blob already present with the right bytes is not written again; one present with other bytes
 * (damaged) is replaced. Files 0600 in a 0700 directory.
 */
export class EvidenceStore {
  readonly dir: string;

  constructor(auditDir: string) {
    this.dir = join(auditDir, EVIDENCE_DIR);
  }

  /** Durably store `bytes`; returns its id (SHA-256). */
  async put(bytes: Uint8Array | string): Promise<string> {
    const id = blobSha256(bytes);
    const path = join(this.dir, id);
    const present = await readFile(path).catch(() => undefined);
    if (present && blobSha256(present) === id) return id;
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    await writeFileDurably(path, bytes, { syncDir: true });
    return id;
  }

  /** The parts first, then the pin document that names them: a document on disk never names a part that is not. */
  async putPin(pin: { bytes: Uint8Array; parts: readonly (Uint8Array | string)[] }): Promise<string> {
    for (const p of pin.parts) await this.put(p);
    return this.put(pin.bytes);
  }
}

/** Blobs younger than this are never pruned: a pin's parts are written before the record that names them. */
const PRUNE_MIN_AGE_MS = 10 * 60_000;

/**
 * Retention: remove the blobs no remaining audit record names (directly, or as a part of a pin
 * document a record names), once older than PRUNE_MIN_AGE_MS. Called after the log's retention
 * removed files. Returns how many blobs were removed.
 */
export async function pruneEvidence(auditDir: string, now: Date): Promise<number> {
  const dir = join(auditDir, EVIDENCE_DIR);
  const present = await readdir(dir).catch(() => [] as string[]);
  if (present.length === 0) return 0;
  const keep = new Set<string>();
  for (const f of await auditFiles(auditDir)) {
    for (const m of (await readFile(join(auditDir, f), 'utf8')).matchAll(/"evidence":"([0-9a-f]{64})"/g)) keep.add(m[1] as string);
  }
  for (const id of [...keep]) {
    const doc = await readFile(join(dir, id), 'utf8').catch(() => undefined);
    try {
      for (const part of Object.values((JSON.parse(doc ?? 'null') as PinDocument | null)?.blobs ?? {})) keep.add(String(part));
    } catch {
      /* not a pin document: the verifier reports it */
    }
  }
  let removed = 0;
  for (const f of present) {
    if (keep.has(f)) continue;
    const s = await stat(join(dir, f)).catch(() => undefined);
    if (!s || now.getTime() - s.mtimeMs < PRUNE_MIN_AGE_MS) continue;
    await rm(join(dir, f), { force: true });
    removed++;
  }
  return removed;
}

export type BlobProblem = { code: 'ERR_AUDIT_EVIDENCE_MISSING' | 'ERR_AUDIT_EVIDENCE_HASH'; message: string };

/** The blob `id` from the archive in `auditDir`, checked against its name. */
export async function readBlob(auditDir: string, id: string): Promise<{ bytes: Buffer } | BlobProblem> {
  if (!ID_RE.test(id)) return { code: 'ERR_AUDIT_EVIDENCE_MISSING', message: `${JSON.stringify(id).slice(0, 80)} is not an evidence id (64 hex digits)` };
  const bytes = await readFile(join(auditDir, EVIDENCE_DIR, id)).catch(() => undefined);
  if (!bytes) return { code: 'ERR_AUDIT_EVIDENCE_MISSING', message: `evidence ${id.slice(0, 16)}… is not in ${EVIDENCE_DIR}/ beside the log` };
  const sha = blobSha256(bytes);
  if (sha !== id) return { code: 'ERR_AUDIT_EVIDENCE_HASH', message: `evidence/${id.slice(0, 16)}… hashes to ${sha.slice(0, 16)}…: edited or damaged` };
  return { bytes };
}

