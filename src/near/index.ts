export { eip191Digest, ethereumAddress, recoverAddress } from './eip191.js';
export { parseNearSignature, MAX_TEXT_LENGTH, type NearSignature } from './parse.js';
export { verifyNearSignature, type NearVerifyOptions, type VerifiedNearSignature } from './verify.js';
