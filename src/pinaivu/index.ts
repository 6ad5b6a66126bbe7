export { BcsWriter } from './bcs.js';
export { parseRoutingReceipt, parseDocumentedReceipt, suiAddressBytes, MAX_PAYOUTS, type RoutingReceipt, type DocumentedReceipt, type Payout } from './parse.js';
export { routingIntentMessage, INTENT_ROUTING_RECEIPT } from './message.js';
export { verifyRoutingReceipt, type VerifiedRoutingReceipt, type CoordinatorKeyBinder, type CoordinatorBinding } from './verify.js';
export { nitroCoordinatorBinder, MAX_ATTESTATION_BYTES, type NitroBindingOptions } from './nitro-binding.js';
export { evaluateRoutingReceipt, evaluateDocumentedReceipt, type PinaivuVerdict, type PinaivuExpectations } from './policy.js';
export { verifyCoordinatorAttestation, type CoordinatorIdentity, type CoordinatorAttestationOptions } from './verify-attestation.js';
