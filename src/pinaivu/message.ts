import { BcsWriter } from './bcs.js';
import type { RoutingReceipt } from './parse.js';

/** `INTENT_ROUTING_RECEIPT` in the coordinator (Pinaivu-AI/Coordinator, protocol.md). */
export const INTENT_ROUTING_RECEIPT = 1;

/**
 * The bytes the coordinator signs (aci-pinaivu-receipts.md §2.1):
 *   BCS(IntentMessage{ intent: u8 = 1, timestamp_ms: u64,
 *        payload: { request_id: vector<u8> (16 raw UUID bytes), aggregated_output_hash: vector<u8> (32),
 *                   payouts: vector<{ address: [u8; 32], amount: u64 }> } })
 * Only this settlement subset is signed: client_id, peer ids, proof_ids and bid_set_hash are not.
 */
export function routingIntentMessage(r: Pick<RoutingReceipt, 'timestampMs' | 'requestIdBytes' | 'aggregatedOutputHash' | 'payouts'>): Uint8Array {
  const w = new BcsWriter().u8(INTENT_ROUTING_RECEIPT).u64(r.timestampMs).bytes(r.requestIdBytes).bytes(r.aggregatedOutputHash).uleb128(r.payouts.length);
  for (const p of r.payouts) w.fixed(p.address).u64(p.amountNanox);
  return w.finish();
}
