export { eip191Digest, ethereumAddress, recoverAddress } from './eip191.js';
export { parseNearSignature, MAX_TEXT_LENGTH, type NearSignature } from './parse.js';
export { verifyNearSignature, type NearVerifyOptions, type VerifiedNearSignature } from './verify.js';
export { parseNearReport, MAX_NEAR_REPORT_BYTES, type NearAttestation, type NearReport } from './report.js';
export { verifyNearReport, gatewayBinding, paddedIdentity, type AttestedSigner, type NearReportOptions } from './verify-report.js';
