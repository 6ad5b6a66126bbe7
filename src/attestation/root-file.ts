import { readFileSync } from 'node:fs';
import type { UpstreamConfig } from '../config/types.js';
import { ConfigError } from '../errors/index.js';
import { parsePemCertificates, type Certificate } from '../x509/certificate.js';

/**
 * Trust roots from a configured PEM file (test roots such as the simulator's) instead of the
 * pinned ones; `key` names the setting (e.g. `tdx.intel_root_file`) in the ConfigError.
 */
export function rootsFromFile(u: UpstreamConfig, key: string, file: string, code: string): Certificate[] {
  try {
    return parsePemCertificates(readFileSync(file, 'utf8'), key);
  } catch (e) {
    throw new ConfigError(code, `upstreams.${u.name}.${key}: cannot use ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}
