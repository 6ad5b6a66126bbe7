import { MalformedError } from '../../errors/index.js';
import type { Certificate } from '../../x509/certificate.js';
import type { Product, TcbVersion } from './abi.js';

/** VCEK/VLEK X.509 extensions (AMD spec 57230), OID prefix 1.3.6.1.4.1.3704.1. */
const OID = {
  productName: '1.3.6.1.4.1.3704.1.2',
  blSPL: '1.3.6.1.4.1.3704.1.3.1',
  teeSPL: '1.3.6.1.4.1.3704.1.3.2',
  snpSPL: '1.3.6.1.4.1.3704.1.3.3',
  fmcSPL: '1.3.6.1.4.1.3704.1.3.9',
  ucodeSPL: '1.3.6.1.4.1.3704.1.3.8',
  hwID: '1.3.6.1.4.1.3704.1.4',
} as const;

export interface VcekExtensions {
  productName?: string;
  product?: Product;
  tcb: Partial<TcbVersion>;
  /** 64 raw bytes (not DER-wrapped); absent on VLEKs. */
  hwId?: Uint8Array;
}

function raw(cert: Certificate, oid: string): Uint8Array | undefined {
  const ext = cert.parsed.extensions.find((e) => e.type === oid);
  return ext ? new Uint8Array(ext.value) : undefined;
}

/** A small non-negative DER INTEGER (the SPL values). */
function derInt(v: Uint8Array | undefined, name: string): number | undefined {
  if (!v) return undefined;
  if (v[0] !== 0x02 || v[1] !== v.length - 2 || v.length < 3 || v.length > 6) throw new MalformedError('ERR_SNP_VCEK_EXTENSION', `VCEK ${name} is not a DER INTEGER`);
  let n = 0;
  for (const byte of v.subarray(2)) n = n * 256 + byte;
  return n;
}

export function readVcekExtensions(cert: Certificate): VcekExtensions {
  const name = raw(cert, OID.productName);
  let productName: string | undefined;
  if (name) {
    if (name[0] !== 0x16 || name[1] !== name.length - 2) throw new MalformedError('ERR_SNP_VCEK_EXTENSION', 'VCEK productName is not an IA5String');
    productName = Buffer.from(name.subarray(2)).toString('ascii');
  }
  const family = productName?.split('-')[0]?.toLowerCase();
  const product = family === 'milan' || family === 'genoa' || family === 'turin' ? family : undefined;
  const tcb: Partial<TcbVersion> = {};
  const set = (k: keyof TcbVersion, oid: string, label: string) => {
    const v = derInt(raw(cert, oid), label);
    if (v !== undefined) tcb[k] = v;
  };
  set('bootloader', OID.blSPL, 'blSPL');
  set('tee', OID.teeSPL, 'teeSPL');
  set('snp', OID.snpSPL, 'snpSPL');
  set('microcode', OID.ucodeSPL, 'ucodeSPL');
  set('fmc', OID.fmcSPL, 'fmcSPL');
  const hwId = raw(cert, OID.hwID);
  return { ...(productName ? { productName } : {}), ...(product ? { product } : {}), tcb, ...(hwId ? { hwId } : {}) };
}
