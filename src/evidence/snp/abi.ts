import { MalformedError } from '../../errors/index.js';
import { isAllZero, toHex } from '../../util/bytes.js';

/**
 * AMD SEV-SNP ATTESTATION_REPORT layout (SEV-SNP ABI spec 56860, Table 21/23; offsets as in
 * go-sev-guest abi/abi.go). Little-endian. Parsing is pure and throws only MalformedError.
 */
export const REPORT_SIZE = 0x4a0;
/** The signature covers bytes [0x000, 0x2A0). */
export const SIGNED_LENGTH = 0x2a0;
export const SUPPORTED_VERSIONS = [2, 3, 5] as const;
const OFF = {
  VERSION: 0x000,
  GUEST_SVN: 0x004,
  POLICY: 0x008,
  FAMILY_ID: 0x010,
  IMAGE_ID: 0x020,
  VMPL: 0x030,
  SIGNATURE_ALGO: 0x034,
  CURRENT_TCB: 0x038,
  PLATFORM_INFO: 0x040,
  SIGNER_INFO: 0x048,
  REPORT_DATA: 0x050,
  MEASUREMENT: 0x090,
  HOST_DATA: 0x0c0,
  ID_KEY_DIGEST: 0x0e0,
  AUTHOR_KEY_DIGEST: 0x110,
  REPORT_ID: 0x140,
  REPORT_ID_MA: 0x160,
  REPORTED_TCB: 0x180,
  CPUID: 0x188,
  CHIP_ID: 0x1a0,
  COMMITTED_TCB: 0x1e0,
  CURRENT_BUILD: 0x1e8,
  COMMITTED_BUILD: 0x1ec,
  LAUNCH_TCB: 0x1f0,
  LAUNCH_MIT_VECTOR: 0x1f8,
  CURRENT_MIT_VECTOR: 0x200,
  SIGNATURE_R: 0x2a0,
  SIGNATURE_S: 0x2e8,
} as const;

export type Product = 'milan' | 'genoa' | 'turin';

/** TCB_VERSION components; the byte layout depends on the product line (sev-snp.md §3). */
export interface TcbVersion {
  bootloader: number;
  tee: number;
  snp: number;
  microcode: number;
  /** Turin only. */
  fmc?: number;
}

export interface SnpReport {
  readonly raw: Uint8Array;
  readonly VERSION: number;
  readonly GUEST_SVN: number;
  readonly POLICY: bigint;
  readonly policy: { abiMinor: number; abiMajor: number; smt: boolean; migrateMa: boolean; debug: boolean; singleSocket: boolean };
  readonly FAMILY_ID: Uint8Array;
  readonly IMAGE_ID: Uint8Array;
  readonly VMPL: number;
  readonly SIGNATURE_ALGO: number;
  readonly CURRENT_TCB: Uint8Array;
  readonly PLATFORM_INFO: bigint;
  /** PLATFORM_INFO bit 0 SMT_EN (SMT is enabled on the host), bit 1 TSME_EN (transparent memory encryption). */
  readonly platformInfo: { smtEnabled: boolean; tsmeEnabled: boolean };
  readonly SIGNING_KEY: 'vcek' | 'vlek' | 'none';
  readonly MASK_CHIP_KEY: boolean;
  readonly AUTHOR_KEY_EN: boolean;
  readonly REPORT_DATA: Uint8Array;
  readonly MEASUREMENT: Uint8Array;
  readonly HOST_DATA: Uint8Array;
  readonly ID_KEY_DIGEST: Uint8Array;
  readonly AUTHOR_KEY_DIGEST: Uint8Array;
  readonly REPORT_ID: Uint8Array;
  readonly REPORTED_TCB: Uint8Array;
  /** Family, model, stepping (v3+; undefined in v2). */
  readonly CPUID?: { family: number; model: number; stepping: number };
  readonly CHIP_ID: Uint8Array;
  readonly COMMITTED_TCB: Uint8Array;
  readonly LAUNCH_TCB: Uint8Array;
  readonly firmware: { current: string; committed: string };
  /** The signature converted to IEEE P1363 (big-endian r‖s, 48 bytes each). */
  readonly signatureP1363: Uint8Array;
}

const mbz = (b: Uint8Array, from: number, to: number, what: string) => {
  if (!isAllZero(b.subarray(from, to))) {
    const at = from + b.subarray(from, to).findIndex((x) => x !== 0);
    throw new MalformedError('ERR_SNP_MBZ_NONZERO', `reserved bytes ${what} must be zero (non-zero at 0x${at.toString(16)})`, { detail: { offset: at } });
  }
};

const le48 = (b: Uint8Array) => Uint8Array.from(b.subarray(0, 48)).reverse();

export function parseSnpReport(bytes: Uint8Array): SnpReport {
  if (bytes.length !== REPORT_SIZE) throw new MalformedError('ERR_SNP_SIZE', `expected a ${REPORT_SIZE}-byte SEV-SNP report, got ${bytes.length}`);
  const b = new Uint8Array(bytes);
  const dv = new DataView(b.buffer);
  const version = dv.getUint32(OFF.VERSION, true);
  if (!(SUPPORTED_VERSIONS as readonly number[]).includes(version)) {
    throw new MalformedError('ERR_SNP_VERSION', `expected report VERSION 2, 3 or 5, got ${version}`);
  }
  const algo = dv.getUint32(OFF.SIGNATURE_ALGO, true);
  if (algo !== 1) throw new MalformedError('ERR_SNP_SIGNATURE_ALGO', `expected SIGNATURE_ALGO 1 (ECDSA P-384 with SHA-384), got ${algo}`);
  const signer = dv.getUint32(OFF.SIGNER_INFO, true);
  if (signer >>> 5 !== 0) mbz(b, OFF.SIGNER_INFO, OFF.SIGNER_INFO + 4, 'in the signer info (bits 5..31)');
  const signingKey = (signer >> 2) & 0x7;
  if (signingKey !== 0 && signingKey !== 1 && signingKey !== 7) throw new MalformedError('ERR_SNP_SIGNING_KEY', `unknown SIGNING_KEY ${signingKey}`);
  mbz(b, 0x04c, 0x050, '0x04C..0x050');
  mbz(b, version >= 3 ? 0x18b : 0x188, 0x1a0, version >= 3 ? '0x18B..0x1A0' : '0x188..0x1A0 (v2 has no CPUID)');
  mbz(b, 0x1eb, 0x1ec, '0x1EB');
  mbz(b, 0x1ef, 0x1f0, '0x1EF');
  mbz(b, version >= 5 ? 0x208 : 0x1f8, SIGNED_LENGTH, version >= 5 ? '0x208..0x2A0' : '0x1F8..0x2A0');
  // R and S are 72-byte little-endian fields of which only the low 48 bytes are significant.
  mbz(b, OFF.SIGNATURE_R + 48, OFF.SIGNATURE_R + 72, 'in the upper 24 bytes of SIGNATURE R');
  mbz(b, OFF.SIGNATURE_S + 48, OFF.SIGNATURE_S + 72, 'in the upper 24 bytes of SIGNATURE S');
  mbz(b, 0x330, REPORT_SIZE, 'after the signature (0x330..0x4A0)');
  const policy = dv.getBigUint64(OFF.POLICY, true);
  // SEV-SNP ABI (56860) Table 9 / go-sev-guest abi.ParseSnpPolicy: bit 17 is reserved and must be 1, bits 63:26 must be zero.
  if (((policy >> 17n) & 1n) !== 1n) throw new MalformedError('ERR_SNP_POLICY_RESERVED', `expected POLICY bit 17 (reserved, must be one) set, got POLICY 0x${policy.toString(16)}`);
  if (policy >> 26n !== 0n) throw new MalformedError('ERR_SNP_POLICY_RESERVED', `expected POLICY bits 63:26 zero, got POLICY 0x${policy.toString(16)}`);
  const slice = (off: number, len: number) => b.slice(off, off + len);
  const fw = (off: number) => `${b[off + 2]}.${b[off + 1]}.${b[off]}`;
  return Object.freeze({
    raw: b,
    VERSION: version,
    GUEST_SVN: dv.getUint32(OFF.GUEST_SVN, true),
    POLICY: policy,
    policy: {
      abiMinor: Number(policy & 0xffn),
      abiMajor: Number((policy >> 8n) & 0xffn),
      smt: ((policy >> 16n) & 1n) === 1n,
      migrateMa: ((policy >> 18n) & 1n) === 1n,
      debug: ((policy >> 19n) & 1n) === 1n,
      singleSocket: ((policy >> 20n) & 1n) === 1n,
    },
    FAMILY_ID: slice(OFF.FAMILY_ID, 16),
    IMAGE_ID: slice(OFF.IMAGE_ID, 16),
    VMPL: dv.getUint32(OFF.VMPL, true),
    SIGNATURE_ALGO: algo,
    CURRENT_TCB: slice(OFF.CURRENT_TCB, 8),
    PLATFORM_INFO: dv.getBigUint64(OFF.PLATFORM_INFO, true),
    platformInfo: { smtEnabled: (dv.getBigUint64(OFF.PLATFORM_INFO, true) & 1n) === 1n, tsmeEnabled: (dv.getBigUint64(OFF.PLATFORM_INFO, true) & 2n) === 2n },
    SIGNING_KEY: signingKey === 0 ? 'vcek' : signingKey === 1 ? 'vlek' : 'none',
    MASK_CHIP_KEY: (signer & 0x2) !== 0,
    AUTHOR_KEY_EN: (signer & 0x1) !== 0,
    REPORT_DATA: slice(OFF.REPORT_DATA, 64),
    MEASUREMENT: slice(OFF.MEASUREMENT, 48),
    HOST_DATA: slice(OFF.HOST_DATA, 32),
    ID_KEY_DIGEST: slice(OFF.ID_KEY_DIGEST, 48),
    AUTHOR_KEY_DIGEST: slice(OFF.AUTHOR_KEY_DIGEST, 48),
    REPORT_ID: slice(OFF.REPORT_ID, 32),
    REPORTED_TCB: slice(OFF.REPORTED_TCB, 8),
    ...(version >= 3 ? { CPUID: { family: b[OFF.CPUID] as number, model: b[OFF.CPUID + 1] as number, stepping: b[OFF.CPUID + 2] as number } } : {}),
    CHIP_ID: slice(OFF.CHIP_ID, 64),
    COMMITTED_TCB: slice(OFF.COMMITTED_TCB, 8),
    LAUNCH_TCB: slice(OFF.LAUNCH_TCB, 8),
    firmware: { current: fw(OFF.CURRENT_BUILD), committed: fw(OFF.COMMITTED_BUILD) },
    signatureP1363: new Uint8Array(Buffer.concat([le48(b.subarray(OFF.SIGNATURE_R)), le48(b.subarray(OFF.SIGNATURE_S))])),
  });
}

/** Decode an 8-byte TCB_VERSION for a product line. */
export function decodeTcb(raw: Uint8Array, product: Product): TcbVersion {
  if (product === 'turin') {
    return { fmc: raw[0] as number, bootloader: raw[1] as number, tee: raw[2] as number, snp: raw[3] as number, microcode: raw[7] as number };
  }
  return { bootloader: raw[0] as number, tee: raw[1] as number, snp: raw[6] as number, microcode: raw[7] as number };
}

/**
 * A minimum TCB from the command line or config: `bl=2,tee=0,snp=5,ucode=68[,fmc=N]`, or the
 * raw 8 bytes as 16 hex digits in report byte order (e.g. `0200000000000544`).
 */
export function parseTcbSpec(spec: string, product: Product): TcbVersion {
  if (/^[0-9a-fA-F]{16}$/.test(spec)) return decodeTcb(Buffer.from(spec, 'hex'), product);
  const out: Partial<TcbVersion> = {};
  const names: Record<string, keyof TcbVersion> = { bl: 'bootloader', bootloader: 'bootloader', tee: 'tee', snp: 'snp', ucode: 'microcode', microcode: 'microcode', fmc: 'fmc' };
  for (const part of spec.split(',')) {
    const m = /^\s*([a-z]+)\s*=\s*(\d{1,3})\s*$/.exec(part);
    const key = m ? names[m[1] as string] : undefined;
    if (!m || !key || Number(m[2]) > 255) throw new MalformedError('ERR_SNP_TCB_SPEC', `expected a TCB like bl=2,tee=0,snp=5,ucode=68 or 16 hex digits, got ${JSON.stringify(spec)}`);
    out[key] = Number(m[2]);
  }
  for (const k of ['bootloader', 'tee', 'snp', 'microcode'] as const) {
    if (out[k] === undefined) throw new MalformedError('ERR_SNP_TCB_SPEC', `the TCB spec lacks ${k}`);
  }
  return out as TcbVersion;
}

export const formatTcb = (t: TcbVersion) => `bl=${t.bootloader},tee=${t.tee},snp=${t.snp},ucode=${t.microcode}${t.fmc !== undefined ? `,fmc=${t.fmc}` : ''}`;
export const hex = toHex;
