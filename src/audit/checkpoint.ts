import { createHash, createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { ConfigError, MalformedError } from '../errors/index.js';
import { canonicalize } from '../jcs/index.js';

/**
 * Signed audit checkpoints (docs/wire.md §7). A checkpoint record is an ordinary chained record
 * `{type: "checkpoint", checkpoint: {seq, hash, time, instance}, key_sha256, sig}`: `seq` and `hash`
 * name the record just before it (the chain head it vouches for), `time` when it was signed,
 * `instance` the daemon run that signed it; `sig` is Ed25519 over the JCS (RFC 8785) form of
 * `checkpoint`, base64url. `key_sha256` is the SHA-256 (hex) of the public key's SPKI DER.
 * A writer without the private key cannot change any record at or before the last checkpoint
 * without `tresor-verify audit --audit-key` noticing.
 */
export interface Checkpoint {
  seq: number;
  hash: string;
  time: string;
  instance: string;
}

export const keySha256 = (pub: KeyObject) => createHash('sha256').update(pub.export({ type: 'spki', format: 'der' })).digest('hex');

const signedBytes = (c: Checkpoint) => Buffer.from(canonicalize({ seq: c.seq, hash: c.hash, time: c.time, instance: c.instance }), 'utf8');

export class CheckpointSigner {
  readonly publicKey: KeyObject;
  readonly keySha256: string;

  private constructor(private readonly key: KeyObject) {
    this.publicKey = createPublicKey(key);
    this.keySha256 = keySha256(this.publicKey);
  }

  /** From a PKCS#8 PEM Ed25519 private key (`openssl genpkey -algorithm ed25519`). */
  static fromPem(pem: string | Buffer, source: string): CheckpointSigner {
    let key: KeyObject;
    try {
      key = createPrivateKey(pem);
    } catch (e) {
      throw new ConfigError('ERR_CONFIG_AUDIT_KEY', `audit.signing_key_file: ${source} is not a PEM private key`, { cause: e });
    }
    if (key.asymmetricKeyType !== 'ed25519') throw new ConfigError('ERR_CONFIG_AUDIT_KEY', `audit.signing_key_file: expected an Ed25519 key, got ${key.asymmetricKeyType ?? 'unknown'}`);
    return new CheckpointSigner(key);
  }

  get publicPem(): string {
    return this.publicKey.export({ type: 'spki', format: 'pem' }).toString();
  }

  /** The fields a checkpoint record carries after its chain fields. */
  record(c: Checkpoint): Record<string, unknown> {
    return { type: 'checkpoint', checkpoint: c, key_sha256: this.keySha256, sig: sign(null, signedBytes(c), this.key).toString('base64url') };
  }
}

/** An Ed25519 public key from a PEM file's text (SPKI, or the private key's PEM). */
export function auditPublicKey(pem: string | Buffer): KeyObject {
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch (e) {
    throw new MalformedError('ERR_AUDIT_KEY_MALFORMED', '--audit-key is not a PEM public key', { cause: e });
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new MalformedError('ERR_AUDIT_KEY_MALFORMED', `--audit-key: expected an Ed25519 key, got ${key.asymmetricKeyType ?? 'unknown'}`);
  return key;
}

/** Why a checkpoint record does not hold (undefined when it does): its place in the chain, then its signature. */
export function checkpointProblem(rec: Record<string, unknown>, key: KeyObject | undefined): { code: string; message: string } | undefined {
  const c = rec.checkpoint as Partial<Checkpoint> | undefined;
  if (!c || typeof c.seq !== 'number' || typeof c.hash !== 'string' || typeof c.time !== 'string' || typeof c.instance !== 'string') {
    return { code: 'ERR_AUDIT_CHECKPOINT_MALFORMED', message: 'a checkpoint record without {seq, hash, time, instance}' };
  }
  if (c.seq !== (rec.seq as number) - 1 || c.hash !== rec.prev) {
    return { code: 'ERR_AUDIT_CHECKPOINT_MISMATCH', message: `the checkpoint names seq ${c.seq}, which is not the record before it` };
  }
  if (!key) return undefined;
  const ok = typeof rec.sig === 'string' && verify(null, signedBytes(c as Checkpoint), key, Buffer.from(rec.sig, 'base64url'));
  return ok ? undefined : { code: 'ERR_AUDIT_CHECKPOINT_SIGNATURE', message: `the checkpoint at seq ${c.seq} is not signed by the audit key` };
}
