import './certificate.js'; // installs the WebCrypto provider for @peculiar/x509
import { webcrypto, createHash, randomBytes } from 'node:crypto';
import * as px from '@peculiar/x509';
import { toHex } from '../util/bytes.js';

export interface GeneratedTlsIdentity {
  /** PEM certificate (serve it; clients trust it, or its issuer, via `ca_file`). */
  certPem: string;
  /** PKCS#8 PEM private key. */
  keyPem: string;
  /** SHA-256 of the DER SubjectPublicKeyInfo (lowercase hex): what attestation binds. */
  spkiSha256: string;
  /** SHA-256 of the certificate DER (lowercase hex, colon-free): the fingerprint printed at start. */
  fingerprint: string;
}

const EC_P256 = { name: 'ECDSA', namedCurve: 'P-256' } as const;

/** A test certificate authority that issues TLS leaves (the simulator's stable CA). */
export interface TestCa {
  /** PEM certificate: what clients put in `ca_file`. */
  certPem: string;
  readonly cert: px.X509Certificate;
  readonly keys: webcrypto.CryptoKeyPair;
}

/**
 * A fresh self-signed ECDSA P-256 CA (CA:TRUE, pathLen 0, keyCertSign) valid from one hour ago
 * for `days` (default 10 years). Test material only: the daemon never trusts it by default.
 */
export async function generateTestCa(opts: { commonName?: string; days?: number; notBefore?: Date } = {}): Promise<TestCa> {
  const keys = (await webcrypto.subtle.generateKey(EC_P256, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const notBefore = opts.notBefore ?? new Date(Date.now() - 3600_000);
  const cert = await px.X509CertificateGenerator.createSelfSigned({
    serialNumber: toHex(randomBytes(8)).replace(/^[89a-f]/, '1'),
    name: `CN=${opts.commonName ?? 'tresor-attest test CA'}, O=tresor-attest (test only)`,
    notBefore,
    notAfter: new Date(notBefore.getTime() + (opts.days ?? 3650) * 86400_000),
    keys,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    extensions: [
      new px.BasicConstraintsExtension(true, 0, true),
      new px.KeyUsagesExtension(px.KeyUsageFlags.keyCertSign | px.KeyUsageFlags.cRLSign, true),
      await px.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certPem: `${cert.toString('pem').trimEnd()}\n`, cert, keys };
}

/**
 * A fresh ECDSA P-256 TLS certificate for `hosts` (DNS names and IP addresses), valid from one
 * hour ago for `days`: self-signed, or issued by `issuer` (then clients trust the CA, and a new
 * key issued by the same CA stays trusted). Used by the simulator and the tests; the daemon
 * never trusts it by default.
 */
export async function generateTlsIdentity(
  hosts: readonly string[] = ['localhost', '127.0.0.1', '::1'],
  opts: { days?: number; notBefore?: Date; commonName?: string; issuer?: TestCa } = {},
): Promise<GeneratedTlsIdentity> {
  const keys = (await webcrypto.subtle.generateKey(EC_P256, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const notBefore = opts.notBefore ?? new Date(Date.now() - 3600_000);
  const notAfter = new Date(notBefore.getTime() + (opts.days ?? 30) * 86400_000);
  const names = hosts.map((h) =>
    /^[\d.]+$/.test(h) || h.includes(':') ? { type: 'ip' as const, value: h } : { type: 'dns' as const, value: h },
  );
  const common = {
    serialNumber: toHex(randomBytes(8)).replace(/^[89a-f]/, '1'),
    notBefore,
    notAfter,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    extensions: [
      new px.BasicConstraintsExtension(false, undefined, true),
      new px.KeyUsagesExtension(px.KeyUsageFlags.digitalSignature, true),
      new px.ExtendedKeyUsageExtension([px.ExtendedKeyUsage.serverAuth]),
      new px.SubjectAlternativeNameExtension(names),
      ...(opts.issuer ? [await px.AuthorityKeyIdentifierExtension.create(opts.issuer.keys.publicKey)] : []),
    ],
  };
  const subject = `CN=${opts.commonName ?? hosts[0] ?? 'localhost'}`;
  const cert = opts.issuer
    ? await px.X509CertificateGenerator.create({ ...common, subject, issuer: opts.issuer.cert.subject, publicKey: keys.publicKey, signingKey: opts.issuer.keys.privateKey })
    : await px.X509CertificateGenerator.createSelfSigned({ ...common, name: subject, keys });
  const pkcs8 = new Uint8Array(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  const keyPem = `-----BEGIN PRIVATE KEY-----\n${Buffer.from(pkcs8).toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '')}\n-----END PRIVATE KEY-----\n`;
  const spki = new Uint8Array(cert.publicKey.rawData);
  return {
    certPem: `${cert.toString('pem').trimEnd()}\n`,
    keyPem,
    spkiSha256: toHex(createHash('sha256').update(spki).digest()),
    fingerprint: toHex(createHash('sha256').update(new Uint8Array(cert.rawData)).digest()),
  };
}
