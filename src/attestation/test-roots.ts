import { readFileSync } from 'node:fs';
import type { UpstreamConfig } from '../config/types.js';
import { describeCause, ConfigError } from '../errors/index.js';
import { parsePemCertificates, type Certificate } from '../x509/certificate.js';

/**
 * Test roots an operator allowed for one upstream: `attestation.test_roots_file`, plus the
 * deprecated per-profile keys (`aci.amd_ark_file`, `tdx.intel_root_file`,
 * `pinaivu.nitro_root_file`), which count as test roots in every respect. Empty when the
 * upstream trusts the pinned vendor roots (`certs/`) only.
 */
export interface TestRoots {
  /** The files they came from (resolved paths), the new key first. */
  readonly files: readonly string[];
  readonly certs: readonly Certificate[];
  /** The deprecated keys in use (for the start-up warning). */
  readonly deprecatedKeys: readonly string[];
}

export const DEPRECATED_TEST_ROOT_KEYS = ['aci.amd_ark_file', 'tdx.intel_root_file', 'pinaivu.nitro_root_file'] as const;

/** The configured test-root files by key, in order (`attestation.test_roots_file` first). */
function testRootFiles(u: UpstreamConfig): [key: string, file: string][] {
  const entries: [string, string | null][] = [
    ['attestation.test_roots_file', u.attestation.test_roots_file],
    ['aci.amd_ark_file', u.aci.amd_ark_file],
    ['tdx.intel_root_file', u.tdx.intel_root_file],
    ['pinaivu.nitro_root_file', u.pinaivu.nitro_root_file],
  ];
  return entries.filter((e): e is [string, string] => e[1] !== null);
}

/**
 * Read an upstream's test roots (once, at start). A named file that is missing, unreadable or
 * holds no certificate refuses the start (`ERR_CONFIG_TEST_ROOTS`, exit 2).
 */
export function loadTestRoots(u: UpstreamConfig): TestRoots {
  const files: string[] = [];
  const certs: Certificate[] = [];
  const deprecatedKeys: string[] = [];
  for (const [key, file] of testRootFiles(u)) {
    let found: Certificate[];
    try {
      found = parsePemCertificates(readFileSync(file, 'utf8'), key);
    } catch (e) {
      throw new ConfigError('ERR_CONFIG_TEST_ROOTS', `upstreams.${u.name}.${key}: cannot use ${file}: ${describeCause(e, { code: true })}`);
    }
    if (found.length === 0) throw new ConfigError('ERR_CONFIG_TEST_ROOTS', `upstreams.${u.name}.${key}: ${file} holds no PEM certificate`);
    if (!files.includes(file)) files.push(file);
    for (const c of found) if (!certs.some((k) => k.sha256 === c.sha256)) certs.push(c);
    if (key !== 'attestation.test_roots_file') deprecatedKeys.push(key);
  }
  return { files, certs, deprecatedKeys };
}

/** The pinned roots plus the test roots (nothing added when there are none). */
export function withTestRoots(pinned: readonly Certificate[], roots: TestRoots): Certificate[] {
  return [...pinned, ...roots.certs.filter((c) => !pinned.some((p) => p.sha256 === c.sha256))];
}
