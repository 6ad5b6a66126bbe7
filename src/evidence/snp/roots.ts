import { readFileSync } from 'node:fs';
import { ConfigError } from '../../errors/index.js';
import { parsePemCertificates, type Certificate } from '../../x509/certificate.js';
import type { Product } from './abi.js';

/** DER SHA-256 of AMD's ARKs and ASKs (identical in go-sev-guest and virtee/sev; sev-snp.md §2). */
export const AMD_ROOT_PINS: Record<Product, { ark: string; ask: string }> = {
  milan: { ark: '69d063b45344d26a2e94e1f4210de49ef555308287d4c174445c95639a540bcd', ask: '67d303bd3905fd38db8b20e0793699870e7fa612eaad5dec358293fd8c0bac1b' },
  genoa: { ark: '4c6598d19c18719c5dfd4a7d335f674e5bfe1d8f800cea2cf270c10d103db2f1', ask: '5464738c1546aed5f2cecf1dc98c5c960a92e8913238a61711bc90ec6e828521' },
  turin: { ark: '1f084161a44bb6d93778a904877d4819cafa5d05ef4193b2ded9dd9c73dd3f6a', ask: '5b77ef5fe7a7a004fd9032668fba9d0fda22f88c4442069a479636a6ae3b3185' },
};

export interface AmdRoots {
  ask: Certificate;
  ark: Certificate;
}

const cache = new Map<Product, AmdRoots>();

/** The pinned ASK and ARK for a product line from certs/ (KDS order: ASK first), fingerprints checked. */
export function loadAmdRoots(product: Product): AmdRoots {
  const hit = cache.get(product);
  if (hit) return hit;
  const file = `amd-ask-ark-${product}.pem`;
  const certs = parsePemCertificates(readFileSync(new URL(`../../../certs/${file}`, import.meta.url), 'utf8'), file);
  const [ask, ark] = certs;
  const pin = AMD_ROOT_PINS[product];
  if (!ask || !ark || ask.sha256 !== pin.ask || ark.sha256 !== pin.ark) {
    throw new ConfigError('ERR_CONFIG_TRUST_ROOT', `certs/${file} does not hold AMD's pinned ASK and ARK for ${product}`);
  }
  const roots = { ask, ark };
  cache.set(product, roots);
  return roots;
}

/** Product line from CPUID (v3+ reports): family 0x19 model 0x0X Milan, 0x1X Genoa; family 0x1A Turin. */
export function productFromCpuid(cpuid: { family: number; model: number } | undefined): Product | undefined {
  if (!cpuid) return undefined;
  if (cpuid.family === 0x19 && cpuid.model >> 4 === 0) return 'milan';
  if (cpuid.family === 0x19 && cpuid.model >> 4 === 1) return 'genoa';
  if (cpuid.family === 0x1a) return 'turin';
  return undefined;
}

/** Every pinned AMD ARK (Milan, Genoa, Turin) from certs/: the roots a trust bundle's `amd_ark_pem` may name. */
export function pinnedAmdArks(): Certificate[] {
  return (['milan', 'genoa', 'turin'] as const).map((p) => loadAmdRoots(p).ark);
}
