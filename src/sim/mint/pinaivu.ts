import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { ed25519 } from '@noble/curves/ed25519.js';
import { routingIntentMessage, suiAddressBytes } from '../../pinaivu/index.js';
import { toHex } from '../../util/bytes.js';
import { createNitroTestPki, mintNitroDocument, renewNitroLeaf, type NitroTestPki } from './nitro.js';

/** Switches that make one Pinaivu check fail (simulator fault knobs), plus `echoNonce`. */
export interface PinaivuFaults {
  /** Put the caller's `?nonce=` into the signed document (the real coordinator takes no nonce). */
  echoNonce?: boolean;
  /** Sign a nonce other than the caller's. */
  wrongNonce?: boolean;
  /** A PCR0 the operator does not allow. */
  wrongPcr0?: boolean;
  /** PCR0..2 all zero: a debug enclave. */
  debugEnclave?: boolean;
  /** The document is signed by a Nitro PKI the daemon does not trust. */
  foreignRoot?: boolean;
  /** The document's timestamp is two hours old. */
  staleDocument?: boolean;
  /** The unsigned `public_key` of the JSON differs from the document's signed one. */
  attestationKeyMismatch?: boolean;
  /** Documented receipt (`/v1/receipts/{id}`): another request id, another model, a day-old timestamp, a timestamp that is not ISO 8601. */
  receiptRequestIdMismatch?: boolean;
  receiptModelMismatch?: boolean;
  receiptStaleTimestamp?: boolean;
  receiptMalformed?: boolean;
  /** Proof (`/v1/proofs/{uuid}`): a flipped signature byte, signed by a key that was never attested, another request id, not a proof, absent (404). */
  proofBadSignature?: boolean;
  proofForeignKey?: boolean;
  proofRequestIdMismatch?: boolean;
  proofMalformed?: boolean;
  noProof?: boolean;
}

/** Every switch by name (`tresor-attest sim --profile pinaivu --pinaivu-fault NAME`). */
export const PINAIVU_FAULTS = [
  'echoNonce',
  'wrongNonce',
  'wrongPcr0',
  'debugEnclave',
  'foreignRoot',
  'staleDocument',
  'attestationKeyMismatch',
  'receiptRequestIdMismatch',
  'receiptModelMismatch',
  'receiptStaleTimestamp',
  'receiptMalformed',
  'proofBadSignature',
  'proofForeignKey',
  'proofRequestIdMismatch',
  'proofMalformed',
  'noProof',
] as const satisfies readonly (keyof PinaivuFaults)[];
export type PinaivuFaultName = (typeof PINAIVU_FAULTS)[number];

export interface PinaivuExchange {
  /** The coordinator's request UUID (the chat answer's `request_id`). */
  requestId: string;
  /** The model that served (the chat answer's `model`). */
  model: string;
  /** SHA-256 hex of the response bytes (the simulator's `aggregated_output_hash`). */
  responseSha256: string;
}

export interface PinaivuDeployment {
  nitro: NitroTestPki;
  /** PCR0 of the coordinator image (96 hex): what the operator allows. */
  pcr0: string;
  /** The coordinator's Ed25519 public key (64 hex). */
  coordinatorKey: string;
  faults: PinaivuFaults;
  /** The coordinator restarts: a new Ed25519 key from then on (attestations and proofs). */
  rotateKey(): string;
  /** `GET /get_attestation[?nonce=]`: `{pcr0, pcr1, pcr2, public_key, timestamp_ms, raw_cbor_hex}`. */
  attestation(nonce: string | null): Promise<Record<string, unknown>>;
  /** `GET /v1/receipts/{request_id}` (the documented shape, seed 004). */
  receipt(x: PinaivuExchange): Record<string, unknown>;
  /** `GET /v1/proofs/{uuid}`: the coordinator's signed `RoutingReceipt`; undefined = 404. */
  proof(x: PinaivuExchange): Record<string, unknown> | undefined;
}

const NODE_ADDRESS = `0x${'7a'.repeat(31)}01`;
const NANOX_PER_TOKEN = 1_000_000_000;

/**
 * A Pinaivu coordinator from the simulator's own test roots: an Ed25519 key "generated inside
 * the enclave", its Nitro attestation (COSE_Sign1 from the Nitro test PKI, `public_key` = that
 * key, PCR0..2 of the image), documented receipts whose `coordinator_signature` follows no public
 * scheme (here: Ed25519 over the receipt's JSON, which no verifier can know), and routing proofs
 * signed exactly as the coordinator does: Ed25519 over BCS(IntentMessage).
 */
export async function createPinaivuDeployment(): Promise<PinaivuDeployment> {
  const nitro = await createNitroTestPki();
  let foreign: NitroTestPki | undefined;
  const pcrs = [randomBytes(48), randomBytes(48), randomBytes(48)];
  let secret = randomBytes(32);
  let publicKey = ed25519.getPublicKey(secret);
  const faults: PinaivuFaults = {};

  const signProof = (x: PinaivuExchange, key: Uint8Array) => {
    const requestId = faults.proofRequestIdMismatch ? randomUUID() : x.requestId;
    const amount = 42_000 + Math.floor(Math.random() * 1000);
    const fields = {
      timestampMs: BigInt(Date.now()),
      requestIdBytes: Buffer.from(requestId.replace(/-/g, ''), 'hex'),
      aggregatedOutputHash: Buffer.from(x.responseSha256, 'hex'),
      payouts: [{ suiAddress: NODE_ADDRESS, address: suiAddressBytes(NODE_ADDRESS, 'payout'), amountNanox: BigInt(amount) }],
    };
    const signature = ed25519.sign(routingIntentMessage(fields), key);
    if (faults.proofBadSignature) signature[7] = (signature[7] as number) ^ 0x01;
    return {
      request_id: requestId,
      client_id: 'sim-client',
      primary_peer_id: '12D3KooWSimPrimaryNode',
      helper_peer_ids: [],
      bid_set_hash: [...randomBytes(32)],
      proof_ids: [],
      aggregated_output_hash: [...fields.aggregatedOutputHash],
      payouts: [{ sui_address: NODE_ADDRESS, amount_nanox: amount }],
      timestamp_ms: Number(fields.timestampMs),
      coordinator_pubkey: [...ed25519.getPublicKey(key)],
      signature: [...signature],
    };
  };

  return {
    nitro,
    pcr0: toHex(pcrs[0] as Uint8Array),
    get coordinatorKey() {
      return toHex(publicKey);
    },
    faults,
    rotateKey() {
      secret = randomBytes(32);
      publicKey = ed25519.getPublicKey(secret);
      return toHex(publicKey);
    },
    async attestation(nonce) {
      const now = new Date();
      let pki = nitro;
      if (faults.foreignRoot) pki = foreign ??= await createNitroTestPki();
      await renewNitroLeaf(pki, now);
      const zero = new Uint8Array(48);
      const docPcrs = new Map<number, Uint8Array>();
      for (let i = 0; i < 16; i++) docPcrs.set(i, faults.debugEnclave && i < 3 ? zero : (pcrs[i] ?? zero));
      if (faults.wrongPcr0 && !faults.debugEnclave) docPcrs.set(0, randomBytes(48));
      const echo = faults.wrongNonce ? randomBytes(32) : faults.echoNonce && nonce ? Buffer.from(nonce, 'hex') : undefined;
      const timestamp = now.getTime() - (faults.staleDocument ? 2 * 3_600_000 : 0);
      const doc = mintNitroDocument(pki, { pcrs: docPcrs, timestamp, publicKey, ...(echo ? { nonce: echo } : {}) });
      const hex = (i: number) => toHex(docPcrs.get(i) as Uint8Array);
      return {
        pcr0: hex(0),
        pcr1: hex(1),
        pcr2: hex(2),
        public_key: faults.attestationKeyMismatch ? toHex(randomBytes(32)) : toHex(publicKey),
        timestamp_ms: timestamp,
        raw_cbor_hex: toHex(doc),
      };
    },
    receipt(x) {
      const doc = {
        request_id: faults.receiptRequestIdMismatch ? randomUUID() : x.requestId,
        node_id: 'node_9f2a3b7c4d1e6f8a',
        model: faults.receiptModelMismatch ? 'llama3.2:3b' : x.model,
        timestamp: faults.receiptMalformed ? 'yesterday' : new Date(Date.now() - (faults.receiptStaleTimestamp ? 24 * 3_600_000 : 0)).toISOString().replace(/\.\d{3}Z$/, 'Z'),
        payment_amount: 42_000 / NANOX_PER_TOKEN,
      };
      const sig = ed25519.sign(createHash('sha256').update(JSON.stringify(doc)).digest(), secret);
      return { ...doc, coordinator_signature: `0x${toHex(sig)}` };
    },
    proof(x) {
      if (faults.noProof) return undefined;
      if (faults.proofMalformed) return { request_id: x.requestId, signature: 'not bytes' };
      return signProof(x, faults.proofForeignKey ? randomBytes(32) : secret);
    },
  };
}
