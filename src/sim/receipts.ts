import { createHash, createHmac, randomUUID } from 'node:crypto';
import { CompactSign, exportJWK, generateKeyPair, type JWK } from 'jose';
import type { FaultState } from './faults.js';
import { OldestFirst } from '../util/oldest-first.js';

type PrivateKey = Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];

interface SigningKey {
  kid: string;
  privateKey: PrivateKey;
  publicJwk: JWK;
}

interface StoredReceipt {
  ownerKeySha256: string;
  jws: string;
  expiresAt: number;
}

/** Receipts as the router issues them: ES256 compact JWS, stored briefly, scoped to the caller's key. */
export class ReceiptService {
  private readonly keys: SigningKey[] = [];
  private readonly store = new Map<string, StoredReceipt>();
  private readonly oldest = new OldestFirst(this.store);

  private constructor(
    private readonly ttlMs: number,
    private readonly maxStored: number,
  ) {}

  static async create(opts: { ttlMs?: number; maxStored?: number } = {}): Promise<ReceiptService> {
    const s = new ReceiptService(opts.ttlMs ?? 3_600_000, opts.maxStored ?? 10_000);
    await s.rotate();
    return s;
  }

  /** Add a new active signing key (`router-receipt-N`); older keys stay in the JWKS. */
  async rotate(): Promise<string> {
    const kid = `router-receipt-${this.keys.length + 1}`;
    const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
    const publicJwk = { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' };
    this.keys.push({ kid, privateKey, publicJwk });
    return kid;
  }

  get activeKid(): string {
    return (this.keys[this.keys.length - 1] as SigningKey).kid;
  }

  jwks(faults: FaultState): { keys: JWK[] } {
    return { keys: this.keys.filter((k) => !faults.jwksDropKids.includes(k.kid)).map((k) => k.publicJwk) };
  }

  newId(): string {
    return randomUUID();
  }

  /** Sign `claims` (applying receipt faults) and store the receipt for the key that made the request. */
  async issue(id: string, claims: Record<string, unknown>, ownerKeySha256: string, faults: FaultState): Promise<void> {
    const jws = await this.sign({ ...claims, ...(faults.receiptClaimOverrides ?? {}) }, faults);
    const store = () => {
      this.evict();
      this.store.set(id, { ownerKeySha256, jws, expiresAt: Date.now() + this.ttlMs });
    };
    if (faults.receiptDelayMs > 0) setTimeout(store, faults.receiptDelayMs).unref();
    else store();
  }

  get(id: string, ownerKeySha256: string): string | undefined {
    const r = this.store.get(id);
    if (!r || r.expiresAt < Date.now() || r.ownerKeySha256 !== ownerKeySha256) return undefined;
    return r.jws;
  }

  /** Test access: the stored JWS regardless of owner. */
  peek(id: string): string | undefined {
    return this.store.get(id)?.jws;
  }

  /**
   * Room for one more: the oldest go first. An expired receipt is refused by `get` wherever it is;
   * walking the whole store for them on every insert cost the bench's simulator ~100 µs per receipt
   * once 10,000 were stored (and the oldest are the first to expire anyway: one TTL for all).
   */
  private evict(): void {
    this.oldest.trim(this.maxStored - 1);
  }

  private async sign(claims: Record<string, unknown>, faults: FaultState): Promise<string> {
    const active = this.keys[this.keys.length - 1] as SigningKey;
    const payload = Buffer.from(JSON.stringify(claims));
    const b64 = (b: Uint8Array | string) => Buffer.from(b).toString('base64url');
    switch (faults.receiptAlg) {
      case 'none':
        return `${b64(JSON.stringify({ alg: 'none', kid: active.kid }))}.${b64(payload)}.`;
      case 'HS256': {
        // The classic confusion attack: HMAC keyed with the public key's JWK bytes.
        const input = `${b64(JSON.stringify({ alg: 'HS256', kid: active.kid }))}.${b64(payload)}`;
        const mac = createHmac('sha256', JSON.stringify(active.publicJwk)).update(input).digest();
        return `${input}.${b64(mac)}`;
      }
      case 'ES384': {
        const { privateKey } = await generateKeyPair('ES384');
        return new CompactSign(payload).setProtectedHeader({ alg: 'ES384', kid: active.kid }).sign(privateKey);
      }
      case 'ES256':
        break;
    }
    let key = active.privateKey;
    if (faults.receiptWrongKey) key = (await generateKeyPair('ES256')).privateKey;
    let jws = await new CompactSign(payload).setProtectedHeader({ alg: 'ES256', kid: active.kid }).sign(key);
    if (faults.receiptTamper) {
      const [h, , s] = jws.split('.');
      jws = `${h}.${b64(JSON.stringify({ ...claims, routed_model: 'eu/tresor/tampered-model' }))}.${s}`;
    }
    if (faults.receiptDerSignature) {
      const [h, p, s] = jws.split('.') as [string, string, string];
      jws = `${h}.${p}.${b64(rawToDer(Buffer.from(s, 'base64url')))}`;
    }
    return jws;
  }
}

/** ECDSA raw r‖s → DER SEQUENCE { INTEGER r, INTEGER s } (the non-standard form in the docs' sample). */
export function rawToDer(raw: Uint8Array): Buffer {
  const half = raw.length / 2;
  const int = (b: Uint8Array) => {
    let i = 0;
    while (i < b.length - 1 && b[i] === 0) i++;
    let v = Buffer.from(b.subarray(i));
    if ((v[0] as number) & 0x80) v = Buffer.concat([Buffer.from([0]), v]);
    return Buffer.concat([Buffer.from([0x02, v.length]), v]);
  };
  const body = Buffer.concat([int(raw.subarray(0, half)), int(raw.subarray(half))]);
  return Buffer.concat([Buffer.from([0x30, body.length]), body]);
}

export const sha256Hex = (b: Uint8Array | string) => createHash('sha256').update(b).digest('hex');
