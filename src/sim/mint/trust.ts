import { createPublicKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { BUNDLE_SCHEMA, BUNDLE_TYP } from '../../trust/verify-bundle.js';
import { MANIFEST_SCHEMA, manifestTag } from '../../trust/verify-manifest.js';

/**
 * Test and simulator trust material: a release root and a workload identity key (Ed25519), and
 * the trust bundles and manifests they sign. Never a default of the daemon.
 */
export interface Ed25519Signer {
  kid: string;
  privateKey: KeyObject;
  publicKey: KeyObject;
  /** PEM SubjectPublicKeyInfo (what an operator pins as the release-root key file). */
  publicPem: string;
  publicJwk: { kty: 'OKP'; crv: 'Ed25519'; x: string; kid: string };
}

export function createEd25519Signer(kid: string, existing?: KeyObject): Ed25519Signer {
  const privateKey = existing ?? generateKeyPairSync('ed25519').privateKey;
  const publicKey = createPublicKey(privateKey);
  const x = publicKey.export({ format: 'jwk' }).x as string;
  return { kid, privateKey, publicKey, publicPem: publicKey.export({ type: 'spki', format: 'pem' }) as string, publicJwk: { kty: 'OKP', crv: 'Ed25519', x, kid } };
}

/** A compact JWS (EdDSA) over a JSON payload. */
export function signJws(signer: Ed25519Signer, header: Record<string, unknown>, payload: unknown): string {
  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const input = `${b64({ alg: 'EdDSA', kid: signer.kid, ...header })}.${b64(payload)}`;
  return `${input}.${sign(null, Buffer.from(input, 'ascii'), signer.privateKey).toString('base64url')}`;
}

export function signTrustBundle(root: Ed25519Signer, payload: Record<string, unknown>): string {
  return signJws(root, { typ: BUNDLE_TYP }, { schema: BUNDLE_SCHEMA, ...payload });
}

export function signManifest(identity: Ed25519Signer, payload: Partial<Record<string, unknown>> = {}): { jws: string; tag: string } {
  const jws = signJws(identity, { typ: 'JWT' }, {
    schema: MANIFEST_SCHEMA,
    workload: 'router',
    version: 'v1.42.3',
    image_digest: `sha256:${'1'.repeat(64)}`,
    binary_digest: `sha256:${'2'.repeat(64)}`,
    build_metadata: { builder: 'tresor-attest simulator' },
    ...payload,
  });
  return { jws, tag: manifestTag(jws) };
}
