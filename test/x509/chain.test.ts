import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import * as px from '@peculiar/x509';
import { beforeAll, describe, expect, test } from 'vitest';
import { parseCertificate, type Certificate } from '../../src/x509/certificate.js';
import { CHAIN_ALGORITHMS, verifyChain } from '../../src/x509/chain.js';
import { readFileSync } from 'node:fs';
import { parsePemCertificates } from '../../src/x509/certificate.js';

const ALG = { name: 'ECDSA', namedCurve: 'P-384' } as const;
const SIGN = { name: 'ECDSA', hash: 'SHA-384' } as const;
const NOW = new Date('2026-06-01T00:00:00Z');
const day = 86_400_000;
type Keys = webcrypto.CryptoKeyPair;
const keys = async () => (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as Keys;

interface Spec {
  name: string;
  ca: boolean;
  pathLength?: number;
  usages?: number;
  extra?: px.Extension[];
  notBefore?: Date;
  notAfter?: Date;
}

async function issue(spec: Spec, subjectKeys: Keys, issuer?: { name: string; keys: Keys }): Promise<Certificate> {
  const ext: px.Extension[] = [];
  if (spec.ca || spec.pathLength !== undefined) ext.push(new px.BasicConstraintsExtension(spec.ca, spec.pathLength, true));
  if (spec.usages !== undefined) ext.push(new px.KeyUsagesExtension(spec.usages, true));
  ext.push(...(spec.extra ?? []));
  const common = {
    serialNumber: String(Math.floor(Math.random() * 1e9)),
    notBefore: spec.notBefore ?? new Date(NOW.getTime() - day),
    notAfter: spec.notAfter ?? new Date(NOW.getTime() + 30 * day),
    signingAlgorithm: SIGN,
    extensions: ext,
  };
  const cert = issuer
    ? await px.X509CertificateGenerator.create({ ...common, subject: `CN=${spec.name}`, issuer: `CN=${issuer.name}`, publicKey: subjectKeys.publicKey, signingKey: issuer.keys.privateKey })
    : await px.X509CertificateGenerator.createSelfSigned({ ...common, name: `CN=${spec.name}`, keys: subjectKeys });
  return parseCertificate(new Uint8Array(cert.rawData));
}

const CA_USAGE = px.KeyUsageFlags.keyCertSign | px.KeyUsageFlags.cRLSign;
let rootKeys: Keys;
let root: Certificate;
let k1: Keys;
let k2: Keys;
let leafKeys: Keys;

beforeAll(async () => {
  [rootKeys, k1, k2, leafKeys] = await Promise.all([keys(), keys(), keys(), keys()]);
  root = await issue({ name: 'root', ca: true, usages: CA_USAGE }, rootKeys);
});

async function chain(over: { i1?: Partial<Spec>; i2?: Partial<Spec>; leaf?: Partial<Spec> } = {}) {
  const i1 = await issue({ name: 'i1', ca: true, pathLength: 1, usages: CA_USAGE, ...over.i1 }, k1, { name: 'root', keys: rootKeys });
  const i2 = await issue({ name: 'i2', ca: true, pathLength: 0, usages: CA_USAGE, ...over.i2 }, k2, { name: 'i1', keys: k1 });
  const leaf = await issue({ name: 'leaf', ca: false, usages: px.KeyUsageFlags.digitalSignature, ...over.leaf }, leafKeys, { name: 'i2', keys: k2 });
  return { leaf, intermediates: [i2, i1, root] };
}

const code = async (over: Parameters<typeof chain>[0], opts: Partial<Parameters<typeof verifyChain>[2]> = {}) => {
  const { leaf, intermediates } = await chain(over);
  try {
    verifyChain(leaf, intermediates, { at: NOW, anchors: [root], leafKeyUsage: ['digitalSignature'], ...opts });
    return 'pass';
  } catch (e) {
    return (e as { code: string }).code;
  }
};

describe('X.509 path validation on minted chains', () => {
  test('a well-formed chain passes', async () => {
    expect(await code({})).toBe('pass');
  });

  test.each([
    ['pathLen exceeded (i1 allows none below it)', { i1: { pathLength: 0 } }, 'ERR_CHAIN_CONSTRAINTS'],
    ['an intermediate that is not a CA', { i2: { ca: false, pathLength: undefined } }, 'ERR_CHAIN_CONSTRAINTS'],
    ['a CA without keyCertSign', { i2: { usages: px.KeyUsageFlags.digitalSignature } }, 'ERR_CHAIN_CONSTRAINTS'],
    ['a CA used as the leaf', { leaf: { ca: true } }, 'ERR_CHAIN_CONSTRAINTS'],
    ['a leaf without digitalSignature', { leaf: { usages: px.KeyUsageFlags.keyEncipherment } }, 'ERR_CHAIN_CONSTRAINTS'],
    ['a not-yet-valid intermediate', { i1: { notBefore: new Date(NOW.getTime() + day) } }, 'ERR_CHAIN_NOT_YET_VALID'],
    ['an expired leaf', { leaf: { notAfter: new Date(NOW.getTime() - 1000) } }, 'ERR_CHAIN_EXPIRED'],
  ] as const)('refuses %s', async (_name, over, expected) => {
    expect(await code(over as Parameters<typeof chain>[0])).toBe(expected);
  });

  test('a chain that ends at another root is untrusted, even with the same names', async () => {
    const otherKeys = await keys();
    const other = await issue({ name: 'root', ca: true, usages: CA_USAGE }, otherKeys);
    expect(await code({}, { anchors: [other] })).toMatch(/^ERR_CHAIN_(UNTRUSTED|SIGNATURE)$/);
    expect(await code({}, { anchors: [] })).toBe('ERR_CHAIN_UNTRUSTED');
  });

  test('a signature by the wrong issuer key fails', async () => {
    const i1 = await issue({ name: 'i1', ca: true, pathLength: 1, usages: CA_USAGE }, k1, { name: 'root', keys: rootKeys });
    const i2 = await issue({ name: 'i2', ca: true, pathLength: 0, usages: CA_USAGE }, k2, { name: 'i1', keys: rootKeys });
    const leaf = await issue({ name: 'leaf', ca: false, usages: px.KeyUsageFlags.digitalSignature }, leafKeys, { name: 'i2', keys: k2 });
    expect(() => verifyChain(leaf, [i2, i1, root], { at: NOW, anchors: [root] })).toThrowError(expect.objectContaining({ code: 'ERR_CHAIN_SIGNATURE' }));
  });
});

describe('RFC 5280 §4.2 critical extensions and per-chain signature algorithms', () => {
  test('an unknown critical extension anywhere in the path is refused, naming it; the same extension non-critical passes', async () => {
    const odd = (critical: boolean) => new px.Extension('1.3.6.1.4.1.99999.1', critical, new Uint8Array([0x05, 0x00]));
    expect(await code({ leaf: { extra: [odd(true)] } })).toBe('ERR_CHAIN_CRITICAL_EXTENSION');
    expect(await code({ i1: { extra: [odd(true)] } })).toBe('ERR_CHAIN_CRITICAL_EXTENSION');
    const c = await chain({ i2: { extra: [odd(true)] } });
    expect(() => verifyChain(c.leaf, c.intermediates, { at: NOW, anchors: [root] })).toThrowError(expect.objectContaining({ message: expect.stringContaining('1.3.6.1.4.1.99999.1') }));
    const ok = await chain({ leaf: { extra: [odd(false)] } });
    expect(verifyChain(ok.leaf, ok.intermediates, { at: NOW, anchors: [root] }).path).toHaveLength(4);
  });
  test('signature algorithms come from the chain allowlist: ECDSA-SHA384 passes the AWS list, fails the Intel and AMD ones', async () => {
    const c = await chain();
    expect(verifyChain(c.leaf, c.intermediates, { at: NOW, anchors: [root], signatureAlgorithms: CHAIN_ALGORITHMS.aws }).path).toHaveLength(4);
    for (const list of [CHAIN_ALGORITHMS.intel, CHAIN_ALGORITHMS.amd]) {
      expect(() => verifyChain(c.leaf, c.intermediates, { at: NOW, anchors: [root], signatureAlgorithms: list })).toThrowError(
        expect.objectContaining({ code: 'ERR_CHAIN_ALGORITHM', message: expect.stringContaining('signed with ECDSA-SHA384') }),
      );
    }
  });
  test('the real AMD chain (VCEK → ASK → ARK, RSA-PSS SHA-384 salt 48) passes the AMD list only', () => {
    const vcek = parsePemCertificates(readFileSync(new URL('../vectors/snp-go-sev-guest-milan-vcek.pem', import.meta.url), 'utf8'))[0] as Certificate;
    const [ask, ark] = parsePemCertificates(readFileSync(new URL('../../certs/amd-ask-ark-milan.pem', import.meta.url), 'utf8')) as [Certificate, Certificate];
    const at = new Date('2026-01-01T00:00:00Z');
    expect(verifyChain(vcek, [ask], { at, anchors: [ark], signatureAlgorithms: CHAIN_ALGORITHMS.amd }).path).toHaveLength(3);
    expect(() => verifyChain(vcek, [ask], { at, anchors: [ark], signatureAlgorithms: CHAIN_ALGORITHMS.aws })).toThrowError(expect.objectContaining({ code: 'ERR_CHAIN_ALGORITHM' }));
  });
});
