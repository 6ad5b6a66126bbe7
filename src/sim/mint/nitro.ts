import '../../x509/certificate.js'; // installs the WebCrypto provider for @peculiar/x509
import { createPrivateKey, randomBytes, sign, webcrypto, type KeyObject } from 'node:crypto';
import * as px from '@peculiar/x509';
import { COSE_ALG_ES384, COSE_SIGN1_TAG } from '../../evidence/nitro/constants.js';
import { sigStructure } from '../../evidence/nitro/verify.js';
import { CborTag, type CborKey, type CborValue } from '../../util/cbor.js';
import { parseCertificate, type Certificate } from '../../x509/certificate.js';
import { encodeCbor } from './cbor-encode.js';

/**
 * An AWS-Nitro-like PKI for the simulator and tests: a self-signed P-384 root (CA, keyCertSign),
 * one intermediate (CA, pathLen 0) and a short-lived P-384 leaf (end entity, digitalSignature)
 * that signs the documents, all ECDSA with SHA-384 like AWS's. AWS chains have four CAs below
 * the root; one is enough to exercise the same code. Never a default of the daemon: only a trust
 * bundle signed by the release root (`nitro.root_pem`) or `--root` makes a verifier trust it.
 */
export interface NitroTestPki {
  root: Certificate;
  intermediate: Certificate;
  /** The current signing certificate; AWS leaves live about 3 hours, see `renewNitroLeaf`. */
  leaf: Certificate;
  leafKey: KeyObject;
  /** The enclave's module id, `i-…-enc…` like AWS's. */
  moduleId: string;
  /** Issue the next leaf from the intermediate (private: kept for renewal). */
  readonly issueLeaf: (now: Date) => Promise<{ leaf: Certificate; leafKey: KeyObject }>;
}

const EC_P384 = { name: 'ECDSA', namedCurve: 'P-384' } as const;
const ES384 = { name: 'ECDSA', hash: 'SHA-384' } as const;
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const CA_USAGE = px.KeyUsageFlags.keyCertSign | px.KeyUsageFlags.cRLSign | px.KeyUsageFlags.digitalSignature;

const serial = () => `01${randomBytes(8).toString('hex')}`;
const keyPair = async () => (await webcrypto.subtle.generateKey(EC_P384, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
const der = (c: px.X509Certificate) => parseCertificate(new Uint8Array(c.rawData));
const name = (cn: string) => `C=US, O=Simulated AWS (test only), OU=Nitro Enclaves, CN=${cn}`;

export async function createNitroTestPki(opts: { now?: Date; leafHours?: number } = {}): Promise<NitroTestPki> {
  const now = opts.now ?? new Date();
  const leafMs = (opts.leafHours ?? 3) * HOUR;
  const [rootKeys, interKeys] = await Promise.all([keyPair(), keyPair()]);
  const instance = `i-0${randomBytes(8).toString('hex')}`;
  const moduleId = `${instance}-enc0${randomBytes(7).toString('hex')}`;
  const root = await px.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: name('sim.nitro-enclaves'),
    notBefore: new Date(now.getTime() - DAY),
    notAfter: new Date(now.getTime() + 30 * 365 * DAY),
    keys: rootKeys,
    signingAlgorithm: ES384,
    extensions: [new px.BasicConstraintsExtension(true, undefined, true), new px.KeyUsagesExtension(CA_USAGE, true)],
  });
  const intermediate = await px.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: name(`${instance}.sim-region.sim.nitro-enclaves`),
    issuer: root.subject,
    notBefore: new Date(now.getTime() - DAY),
    notAfter: new Date(now.getTime() + 365 * DAY),
    publicKey: interKeys.publicKey,
    signingKey: rootKeys.privateKey,
    signingAlgorithm: ES384,
    extensions: [new px.BasicConstraintsExtension(true, 0, true), new px.KeyUsagesExtension(CA_USAGE, true)],
  });
  const issueLeaf = async (at: Date) => {
    const keys = await keyPair();
    const leaf = await px.X509CertificateGenerator.create({
      serialNumber: serial(),
      subject: name(`${moduleId}.sim-region.sim`),
      issuer: intermediate.subject,
      notBefore: new Date(at.getTime() - 5 * 60_000),
      notAfter: new Date(at.getTime() + leafMs),
      publicKey: keys.publicKey,
      signingKey: interKeys.privateKey,
      signingAlgorithm: ES384,
      extensions: [new px.BasicConstraintsExtension(false, undefined, true), new px.KeyUsagesExtension(px.KeyUsageFlags.digitalSignature, true)],
    });
    const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
    return { leaf: der(leaf), leafKey: createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' }) };
  };
  return { root: der(root), intermediate: der(intermediate), moduleId, issueLeaf, ...(await issueLeaf(now)) };
}

/** Replace the leaf when it expires within `marginMs` of `now` (a long-running simulator). */
export async function renewNitroLeaf(pki: NitroTestPki, now: Date, marginMs = 30 * 60_000): Promise<void> {
  if (pki.leaf.notAfter.getTime() - marginMs > now.getTime()) return;
  Object.assign(pki, await pki.issueLeaf(now));
}

export interface MintNitroOptions {
  /** PCR index → value (48 bytes for SHA384). Real documents carry PCR0..15. */
  pcrs: ReadonlyMap<number, Uint8Array>;
  /** Milliseconds since the epoch (default now). */
  timestamp?: number;
  userData?: Uint8Array;
  nonce?: Uint8Array;
  publicKey?: Uint8Array;
  /** Wrap in COSE tag 18 (the NSM emits untagged documents). */
  tagged?: boolean;
}

/**
 * A COSE_Sign1 attestation document laid out as the Nitro Secure Module emits it: protected
 * header {1: -35}, empty unprotected map, payload map in NSM field order (absent optional fields
 * encoded as null), `cabundle` root first, and an ES384 signature (96-byte r‖s) by the leaf over
 * the Sig_structure ["Signature1", protected, h'', payload].
 */
export function mintNitroDocument(pki: NitroTestPki, o: MintNitroOptions): Uint8Array {
  const payload = new Map<CborKey, CborValue>([
    ['module_id', pki.moduleId],
    ['digest', 'SHA384'],
    ['timestamp', o.timestamp ?? Date.now()],
    ['pcrs', new Map<CborKey, CborValue>([...o.pcrs].sort(([a], [b]) => a - b))],
    ['certificate', pki.leaf.der],
    ['cabundle', [pki.root.der, pki.intermediate.der]],
    ['public_key', o.publicKey ?? null],
    ['user_data', o.userData ?? null],
    ['nonce', o.nonce ?? null],
  ]);
  const protectedBytes = encodeCbor(new Map<CborKey, CborValue>([[1, COSE_ALG_ES384]]));
  const payloadBytes = encodeCbor(payload);
  const signature = sign('sha384', sigStructure({ protectedBytes, payloadBytes }), { key: pki.leafKey, dsaEncoding: 'ieee-p1363' });
  const cose: CborValue = [protectedBytes, new Map(), payloadBytes, new Uint8Array(signature)];
  return encodeCbor(o.tagged ? new CborTag(COSE_SIGN1_TAG, cose) : cose);
}
