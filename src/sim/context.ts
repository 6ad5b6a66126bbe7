import type { FaultState } from './faults.js';
import type { ReceiptService } from './receipts.js';

export interface DeterministicMode {
  /** Size of the generated text in JSON replies (and the total streamed text). */
  jsonBytes: number;
  streamChunks: number;
  chunkIntervalMs: number;
}

/** What route handlers share. */
export interface SimContext {
  faults: FaultState;
  receipts: ReceiptService;
  receiptsEnabled: boolean;
  /** The aci/1 profile: receipt id in `X-Receipt-Id`, no `tresor` block, signed event-log receipts. */
  aci: boolean;
  /** The Pinaivu profile: the coordinator's request UUID as the answer's top-level `request_id`, no `tresor` block. */
  pinaivu: boolean;
  /** The NEAR profile: the chat id (`id`) names the signature, no `tresor` block. */
  near: boolean;
  deterministic: DeterministicMode | undefined;
  /** Sign and store a receipt with the standard claims plus `claims`. */
  issueReceipt(id: string, ownerKeySha256: string, faults: FaultState, claims: Record<string, unknown>): Promise<void>;
}
