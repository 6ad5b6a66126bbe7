import { createPublicKey, type KeyObject } from 'node:crypto';
import { MalformedError } from '../errors/index.js';

/**
 * The pinned release-root public key (Ed25519), given as a file in one of three forms:
 * PEM SubjectPublicKeyInfo, a JWK (`{"kty":"OKP","crv":"Ed25519","x":…}`), or the raw 32-byte
 * key as 64 hex digits (whitespace ignored).
 */
export function loadReleaseRootKey(bytes: Uint8Array): KeyObject {
  const text = Buffer.from(bytes).toString('utf8').trim();
  let key: KeyObject;
  try {
    if (text.startsWith('-----BEGIN')) key = createPublicKey(text);
    else if (text.startsWith('{')) key = createPublicKey({ key: JSON.parse(text) as import('node:crypto').JsonWebKey, format: 'jwk' });
    else if (/^[0-9a-fA-F\s]+$/.test(text) && text.replace(/\s+/g, '').length === 64) {
      // An Ed25519 SPKI is a fixed 12-byte prefix followed by the 32-byte key (RFC 8410).
      const raw = Buffer.from(text.replace(/\s+/g, ''), 'hex');
      key = createPublicKey({ key: Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), raw]), format: 'der', type: 'spki' });
    } else throw new Error('unrecognised form');
  } catch (cause) {
    throw new MalformedError('ERR_RELEASE_ROOT_KEY', 'the release-root key must be an Ed25519 public key as PEM, JWK or 64 hex digits', { cause });
  }
  if (key.type !== 'public' || key.asymmetricKeyType !== 'ed25519') {
    throw new MalformedError('ERR_RELEASE_ROOT_KEY', `the release-root key must be Ed25519, got ${key.asymmetricKeyType ?? key.type}`);
  }
  return key;
}
