import { createHash, verify as cryptoVerify } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ConfigError, VerificationError } from '../../errors/index.js';
import { asVerified, type Verified } from '../../types.js';
import { parseCertificate, parsePemCertificates, type Certificate } from '../../x509/certificate.js';
import { CHAIN_ALGORITHMS, verifyChain } from '../../x509/chain.js';
import { AWS_NITRO_ROOT_G1_SHA256 } from './constants.js';
import type { NitroDocument } from './parse.js';

export interface VerifiedNitro extends NitroDocument {
  /** [leaf, intermediates…, root] as validated. */
  readonly chain: readonly Certificate[];
}

/** The pinned AWS Nitro root shipped in certs/, checked against its DER fingerprint at load. */
export function loadNitroRoots(path = new URL('../../../certs/aws-nitro-root-g1.pem', import.meta.url)): Certificate[] {
  const roots = parsePemCertificates(readFileSync(path, 'utf8'), 'aws-nitro-root-g1.pem');
  if (roots.length !== 1 || roots[0]?.sha256 !== AWS_NITRO_ROOT_G1_SHA256) {
    throw new ConfigError('ERR_CONFIG_TRUST_ROOT', `certs/aws-nitro-root-g1.pem is not the AWS Nitro root G1 (expected DER SHA-256 ${AWS_NITRO_ROOT_G1_SHA256})`);
  }
  return roots;
}

/** CBOR `bstr` header for a byte string of `n` bytes. */
function bstrHeader(n: number): Uint8Array {
  if (n < 24) return Uint8Array.of(0x40 | n);
  if (n < 0x100) return Uint8Array.of(0x58, n);
  if (n < 0x10000) return Uint8Array.of(0x59, n >> 8, n & 0xff);
  return Uint8Array.of(0x5a, (n >>> 24) & 0xff, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff);
}

/**
 * COSE Sig_structure for COSE_Sign1 (RFC 8152 §4.4): ["Signature1", protected, h'', payload],
 * built from the ORIGINAL byte strings — never a re-encoding of the decoded payload.
 */
export function sigStructure(doc: Pick<NitroDocument, 'protectedBytes' | 'payloadBytes'>): Uint8Array {
  const context = Buffer.from('6a5369676e617475726531', 'hex'); // text(10) "Signature1"
  return Buffer.concat([
    Uint8Array.of(0x84),
    context,
    bstrHeader(doc.protectedBytes.length),
    doc.protectedBytes,
    Uint8Array.of(0x40),
    bstrHeader(doc.payloadBytes.length),
    doc.payloadBytes,
  ]);
}

/**
 * AWS §3.2.3 + COSE: chain [certificate, cabundle reversed] to a pinned root, every
 * certificate valid at `at` (inclusive, whole seconds), CA constraints and key usages, leaf
 * key on P-384, then ES384 over the Sig_structure. Returns the document only on success.
 */
export function verifyNitroDocument(doc: NitroDocument, opts: { at: Date; roots: readonly Certificate[] }): Verified<VerifiedNitro> {
  const leaf = parseCertificate(doc.certificate, 'certificate');
  const intermediates = [...doc.cabundle].reverse().map((der, i) => parseCertificate(der, `cabundle[${doc.cabundle.length - 1 - i}]`));
  const chain = verifyChain(leaf, intermediates, { at: opts.at, anchors: opts.roots, leafKeyUsage: ['digitalSignature'], label: 'Nitro', signatureAlgorithms: CHAIN_ALGORITHMS.aws });
  const key = leaf.node.publicKey;
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'secp384r1') {
    throw new VerificationError('ERR_NITRO_LEAF_KEY', `expected the signing certificate to hold a P-384 key, got ${key.asymmetricKeyType} ${key.asymmetricKeyDetails?.namedCurve ?? ''}`);
  }
  // High-S signatures occur in real documents; node:crypto accepts them, as it must.
  if (!cryptoVerify('sha384', sigStructure(doc), { key, dsaEncoding: 'ieee-p1363' }, doc.signature)) {
    throw new VerificationError('ERR_NITRO_SIGNATURE', 'the COSE_Sign1 ES384 signature does not verify with the signing certificate');
  }
  return asVerified({ ...doc, chain: chain.path });
}

/** SHA-256 (hex) of the document bytes, for audit records. */
export const nitroDocumentDigest = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');
