import '../../x509/certificate.js'; // installs the WebCrypto provider for @peculiar/x509
import { createPrivateKey, sign, webcrypto, type KeyObject } from 'node:crypto';
import * as px from '@peculiar/x509';
import { parseCertificate, type Certificate } from '../../x509/certificate.js';
import { REPORT_SIZE, SIGNED_LENGTH, type Product, type TcbVersion } from '../../evidence/snp/abi.js';

/**
 * An AMD-like PKI for the simulator and tests: ARK (self-signed) → ASK, both RSA with
 * RSASSA-PSS/SHA-384 like AMD's (2048-bit here for speed; AMD's are 4096), → a P-384 VCEK with
 * the 1.3.6.1.4.1.3704.1.* TCB and hwID extensions. Never a default of the daemon.
 */
export interface SnpTestPki {
  product: Product;
  ark: Certificate;
  ask: Certificate;
  vcek: Certificate;
  vcekKey: KeyObject;
  /** The ARK's signing key (to issue a CRL in tests). */
  arkSigningKey: webcrypto.CryptoKey;
  chipId: Uint8Array;
  tcb: TcbVersion;
}

const RSA_PSS = { name: 'RSA-PSS', hash: 'SHA-384', publicExponent: new Uint8Array([1, 0, 1]), modulusLength: 2048 } as const;
const PSS_SIGN = { name: 'RSA-PSS', hash: 'SHA-384', saltLength: 48 } as const;

const derInt = (n: number) => (n >= 0x80 ? Uint8Array.of(0x02, 0x02, 0x00, n) : Uint8Array.of(0x02, 0x01, n));
const ia5 = (s: string) => Uint8Array.of(0x16, s.length, ...Buffer.from(s, 'ascii'));

export async function createSnpTestPki(opts: { product?: Product; now?: Date; tcb?: TcbVersion; chipId?: Uint8Array; vcekTcb?: TcbVersion } = {}): Promise<SnpTestPki> {
  const product = opts.product ?? 'milan';
  const now = opts.now ?? new Date();
  const tcb = opts.tcb ?? { bootloader: 3, tee: 0, snp: 8, microcode: 115, ...(product === 'turin' ? { fmc: 1 } : {}) };
  const chipId = opts.chipId ?? new Uint8Array(64).map((_, i) => (i * 7 + 3) & 0xff);
  const subtle = webcrypto.subtle;
  const arkKeys = (await subtle.generateKey(RSA_PSS, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const askKeys = (await subtle.generateKey(RSA_PSS, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const vcekKeys = (await subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-384' }, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const P = product[0]?.toUpperCase() + product.slice(1);
  const name = (cn: string) => `CN=${cn}, O=Simulated AMD (test only), OU=Engineering`;
  const notBefore = new Date(now.getTime() - 86_400_000);
  const ca = (flags: number) => [new px.BasicConstraintsExtension(true, undefined, true), new px.KeyUsagesExtension(flags, true)];
  const ark = await px.X509CertificateGenerator.createSelfSigned({
    serialNumber: '010000',
    name: name(`ARK-${P}`),
    notBefore,
    notAfter: new Date(now.getTime() + 25 * 365 * 86_400_000),
    keys: arkKeys,
    signingAlgorithm: PSS_SIGN,
    extensions: ca(px.KeyUsageFlags.keyCertSign | px.KeyUsageFlags.cRLSign),
  });
  const ask = await px.X509CertificateGenerator.create({
    serialNumber: '010001',
    subject: name(`SEV-${P}`),
    issuer: ark.subject,
    notBefore,
    notAfter: new Date(now.getTime() + 25 * 365 * 86_400_000),
    publicKey: askKeys.publicKey,
    signingKey: arkKeys.privateKey,
    signingAlgorithm: PSS_SIGN,
    extensions: ca(px.KeyUsageFlags.keyCertSign | px.KeyUsageFlags.cRLSign),
  });
  const vt = opts.vcekTcb ?? tcb;
  const ext = (oid: string, value: Uint8Array) => new px.Extension(oid, false, value);
  const vcek = await px.X509CertificateGenerator.create({
    serialNumber: '00',
    subject: name('SEV-VCEK'),
    issuer: ask.subject,
    notBefore,
    notAfter: new Date(now.getTime() + 7 * 365 * 86_400_000),
    publicKey: vcekKeys.publicKey,
    signingKey: askKeys.privateKey,
    signingAlgorithm: PSS_SIGN,
    extensions: [
      ext('1.3.6.1.4.1.3704.1.1', Uint8Array.of(0x02, 0x01, 0x00)),
      ext('1.3.6.1.4.1.3704.1.2', ia5(`${P}-B0`)),
      ext('1.3.6.1.4.1.3704.1.3.1', derInt(vt.bootloader)),
      ext('1.3.6.1.4.1.3704.1.3.2', derInt(vt.tee)),
      ext('1.3.6.1.4.1.3704.1.3.3', derInt(vt.snp)),
      ext('1.3.6.1.4.1.3704.1.3.8', derInt(vt.microcode)),
      ...(vt.fmc !== undefined ? [ext('1.3.6.1.4.1.3704.1.3.9', derInt(vt.fmc))] : []),
      ext('1.3.6.1.4.1.3704.1.4', chipId),
    ],
  });
  const pkcs8 = Buffer.from(await subtle.exportKey('pkcs8', vcekKeys.privateKey));
  return {
    product,
    ark: parseCertificate(new Uint8Array(ark.rawData)),
    ask: parseCertificate(new Uint8Array(ask.rawData)),
    vcek: parseCertificate(new Uint8Array(vcek.rawData)),
    vcekKey: createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' }),
    arkSigningKey: arkKeys.privateKey,
    chipId,
    tcb,
  };
}

export function encodeTcb(t: TcbVersion, product: Product): Uint8Array {
  const b = new Uint8Array(8);
  if (product === 'turin') {
    b[0] = t.fmc ?? 0;
    b[1] = t.bootloader;
    b[2] = t.tee;
    b[3] = t.snp;
  } else {
    b[0] = t.bootloader;
    b[1] = t.tee;
    b[6] = t.snp;
  }
  b[7] = t.microcode;
  return b;
}

export interface MintSnpOptions {
  version?: 2 | 3 | 5;
  measurement: Uint8Array;
  reportData: Uint8Array;
  /** Default 0x30000 (SMT allowed, reserved bit 17); add 1n << 19n for a debug guest. */
  policy?: bigint;
  vmpl?: number;
  reportedTcb?: TcbVersion;
}

/** A correctly laid-out SEV-SNP report signed by the PKI's VCEK (little-endian r/s). */
export function mintSnpReport(pki: SnpTestPki, o: MintSnpOptions): Uint8Array {
  const b = new Uint8Array(REPORT_SIZE);
  const dv = new DataView(b.buffer);
  const version = o.version ?? 2;
  dv.setUint32(0x000, version, true);
  dv.setBigUint64(0x008, o.policy ?? 0x30000n, true);
  dv.setUint32(0x030, o.vmpl ?? 0, true);
  dv.setUint32(0x034, 1, true);
  const tcb = encodeTcb(o.reportedTcb ?? pki.tcb, pki.product);
  b.set(tcb, 0x038);
  dv.setBigUint64(0x040, 1n, true);
  b.set(o.reportData.subarray(0, 64), 0x050);
  b.set(o.measurement.subarray(0, 48), 0x090);
  b.set(tcb, 0x180);
  if (version >= 3) b.set(pki.product === 'turin' ? [0x1a, 0x02, 0x00] : pki.product === 'genoa' ? [0x19, 0x11, 0x01] : [0x19, 0x01, 0x01], 0x188);
  b.set(pki.chipId, 0x1a0);
  b.set(tcb, 0x1e0);
  b.set([3, 55, 1], 0x1e8);
  b.set([3, 55, 1], 0x1ec);
  b.set(tcb, 0x1f0);
  const sig = sign('sha384', b.subarray(0, SIGNED_LENGTH), { key: pki.vcekKey, dsaEncoding: 'ieee-p1363' });
  b.set(Uint8Array.from(sig.subarray(0, 48)).reverse(), 0x2a0);
  b.set(Uint8Array.from(sig.subarray(48, 96)).reverse(), 0x2e8);
  return b;
}
