import 'reflect-metadata';
import { X509Certificate as NodeX509, createHash, webcrypto } from 'node:crypto';
import * as px from '@peculiar/x509';
import { MalformedError } from '../errors/index.js';
import { toHex } from '../util/bytes.js';

px.cryptoProvider.set(webcrypto as unknown as Parameters<typeof px.cryptoProvider.set>[0]);

/** A certificate parsed once, with both views we need: node:crypto for signatures, @peculiar/x509 for extensions. */
export interface Certificate {
  readonly der: Uint8Array;
  /** Lowercase hex SHA-256 of the DER encoding (the fingerprint we pin). */
  readonly sha256: string;
  readonly node: NodeX509;
  readonly parsed: px.X509Certificate;
  readonly subject: string;
  readonly issuer: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

export const MAX_CERT_BYTES = 16 * 1024;

/**
 * Parsed certificates by DER SHA-256: attestation chains repeat the same intermediates, and
 * parsing (two ASN.1 decoders) costs far more than hashing. Parsing is pure, so caching is safe.
 */
const parsedCache = new Map<string, Certificate>();
const MAX_CACHED_CERTS = 512;

export function parseCertificate(der: Uint8Array, field = 'certificate'): Certificate {
  if (der.length === 0 || der.length > MAX_CERT_BYTES) {
    throw new MalformedError('ERR_CERT_MALFORMED', `expected ${field} of 1..${MAX_CERT_BYTES} bytes, got ${der.length}`);
  }
  const sha256 = toHex(createHash('sha256').update(der).digest());
  const hit = parsedCache.get(sha256);
  if (hit) return hit;
  try {
    const node = new NodeX509(der);
    const parsed = new px.X509Certificate(der);
    const cert: Certificate = Object.freeze({
      der: new Uint8Array(der),
      sha256,
      node,
      parsed,
      subject: parsed.subject,
      issuer: parsed.issuer,
      notBefore: parsed.notBefore,
      notAfter: parsed.notAfter,
    });
    if (parsedCache.size >= MAX_CACHED_CERTS) parsedCache.clear();
    parsedCache.set(sha256, cert);
    return cert;
  } catch (cause) {
    throw new MalformedError('ERR_CERT_MALFORMED', `${field} is not a valid DER X.509 certificate`, { cause });
  }
}

const PEM_RE = /-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/g;

/** Every certificate in a PEM text, in order. Empty text gives an empty list. */
export function parsePemCertificates(pem: string, field = 'PEM'): Certificate[] {
  const out: Certificate[] = [];
  for (const m of pem.matchAll(PEM_RE)) {
    const body = (m[1] ?? '').replace(/\s+/g, '');
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(body)) {
      throw new MalformedError('ERR_CERT_MALFORMED', `${field} contains a certificate block that is not base64`);
    }
    out.push(parseCertificate(new Uint8Array(Buffer.from(body, 'base64')), `${field}[${out.length}]`));
  }
  if (out.length === 0 && pem.trim() !== '') {
    throw new MalformedError('ERR_CERT_MALFORMED', `${field} contains no PEM certificate`);
  }
  return out;
}

export function toPem(cert: Certificate | Uint8Array): string {
  const der = cert instanceof Uint8Array ? cert : cert.der;
  const b64 = Buffer.from(der).toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '');
  return `-----BEGIN CERTIFICATE-----\n${b64}\n-----END CERTIFICATE-----\n`;
}

const peers = new WeakMap<object, NodeX509>();

/** The TLS socket methods `peerCertificate` reads. */
interface PeerSocket {
  getPeerCertificate(detailed?: boolean): { raw?: Buffer } | Record<string, never>;
  getPeerX509Certificate?(): NodeX509 | undefined;
}

/**
 * The certificate chain a TLS peer presented, leaf first (DER, base64), as far as Node links each
 * certificate to its issuer (the leaf alone when it does not).
 */
export function peerChainBase64(socket: PeerSocket): string[] {
  const out: string[] = [];
  let c: NodeX509 | undefined = peerCertificate(socket);
  while (c && out.length < 10) {
    out.push(c.raw.toString('base64'));
    const next: NodeX509 | undefined = c.issuerCertificate;
    if (!next || next.fingerprint256 === c.fingerprint256) break;
    c = next;
  }
  return out;
}

/**
 * The peer's leaf certificate of a TLS socket, cached per socket. getPeerX509Certificate() hands
 * over Node's own parsed certificate; getPeerCertificate() builds a JS object of every field
 * first (with the DER parsed again here, about a quarter of a millisecond per new upstream
 * connection on the bench machine). Node 20's getPeerX509Certificate() answers only once per
 * socket (later calls return undefined), so the DER is read through getPeerCertificate() when it
 * does not answer.
 */
export function peerCertificate(socket: PeerSocket): NodeX509 | undefined {
  const hit = peers.get(socket);
  if (hit) return hit;
  let cert = socket.getPeerX509Certificate?.();
  if (!cert) {
    const raw = (socket.getPeerCertificate(false) as { raw?: Buffer }).raw;
    if (!raw || raw.length === 0) return undefined;
    cert = new NodeX509(raw);
  }
  peers.set(socket, cert);
  return cert;
}

/**
 * SPKI digests by certificate fingerprint (SHA-256 of the whole DER, from which the SPKI is
 * read): every connection to a router presents the same certificate, and exporting the key is
 * most of the cost. Bounded: cleared when full.
 */
const spkiByFingerprint = new Map<string, string>();
const SPKI_CACHE_MAX = 256;

/** SHA-256 (lowercase hex) of the DER SubjectPublicKeyInfo: the value TLS pins compare. */
export function spkiSha256(cert: Certificate | NodeX509): string {
  const node = cert instanceof NodeX509 ? cert : cert.node;
  const fingerprint = node.fingerprint256;
  let digest = spkiByFingerprint.get(fingerprint);
  if (digest === undefined) {
    digest = toHex(createHash('sha256').update(node.publicKey.export({ type: 'spki', format: 'der' })).digest());
    if (spkiByFingerprint.size >= SPKI_CACHE_MAX) spkiByFingerprint.clear();
    spkiByFingerprint.set(fingerprint, digest);
  }
  return digest;
}
