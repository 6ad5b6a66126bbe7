import { constants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { ResolvedConfig, UpstreamConfig } from '../config/types.js';
import { describeCause, ConfigError } from '../errors/index.js';
import { aciTeeVerifier } from '../attestation/aci.js';
import { pinaivuNitroRoots } from '../attestation/pinaivu.js';
import { tdxCollateralSource, tdxRoots } from '../attestation/tdx.js';
import { loadTestRoots } from '../attestation/test-roots.js';
import { readReleaseRoot } from '../attestation/tresor.js';
import { readLocalToken } from './local-auth.js';
import { auditSigner } from './receipts.js';
import { readApiKey, readCa } from './upstream.js';

/**
 * Everything `serve` refuses before it listens, checked without starting anything: the state and
 * log directories, the audit signing key, and per upstream the API key, CA, local token and
 * trust-root files (release root, test roots), read by the
 * same functions the daemon uses (so the codes are the same). `startDaemon` runs it first and
 * `config check` runs it alone. Throws the first ConfigError; returns warnings (secret files
 * readable by group or others).
 */
export async function preflight(config: ResolvedConfig, env: Record<string, string | undefined>): Promise<string[]> {
  await writableDir(config.state_dir, 'state_dir', 'ERR_CONFIG_STATE_DIR');
  if (config.log.file) await writableDir(dirname(config.log.file), 'log.file', 'ERR_CONFIG_LOG_FILE');
  await auditSigner(config);
  const warnings: string[] = [];
  if (config.audit.signing_key_file) warnings.push(...(await secretFileWarning('audit.signing_key_file', config.audit.signing_key_file)));
  for (const u of config.upstreams) {
    readApiKey(u, env);
    if (u.ca_file) readCa(u);
    readLocalToken(u);
    await trustMaterial(u, config.state_dir);
    for (const [key, file] of [
      ['api_key_file', u.api_key_file],
      ['local_token_file', u.local_token_file],
    ] as const) {
      if (file) warnings.push(...(await secretFileWarning(`upstreams.${u.name}.${key}`, file)));
    }
  }
  return warnings;
}

/** The trust material the upstream's profile loads at start (the daemon's attester set-up reads the same). */
async function trustMaterial(u: UpstreamConfig, stateDir: string): Promise<void> {
  if (u.attestation.mode === 'off') return;
  // attestation.test_roots_file (and the deprecated per-profile root files) must exist: ERR_CONFIG_TEST_ROOTS.
  const testRoots = loadTestRoots(u);
  if (u.profile === 'aci') aciTeeVerifier(u, testRoots, { stateDir, clock: () => new Date() });
  else if (u.profile === 'pinaivu') pinaivuNitroRoots(testRoots);
  else if (u.profile === 'near') {
    tdxRoots(testRoots);
    tdxCollateralSource(u, { stateDir, clock: () => new Date() });
  }
  else await readReleaseRoot(u);
}

/** `dir` is a writable directory, or can be created (its nearest existing ancestor is one). */
async function writableDir(dir: string, key: string, code: string): Promise<void> {
  let at = dir;
  for (;;) {
    const s = await stat(at).catch((e: NodeJS.ErrnoException) => (e.code === 'ENOENT' ? undefined : e));
    if (s instanceof Error) throw new ConfigError(code, `${key}: cannot use ${dir}: ${describeCause(s, { code: true })}`);
    if (s) {
      if (!s.isDirectory()) throw new ConfigError(code, `${key}: cannot use ${dir}: ${at} is not a directory`);
      await access(at, constants.W_OK | constants.X_OK).catch((e: NodeJS.ErrnoException) => {
        throw new ConfigError(code, `${key}: cannot use ${dir}: ${at} is not writable (${describeCause(e, { code: true })})`);
      });
      return;
    }
    const up = dirname(at);
    if (up === at) return;
    at = up;
  }
}

async function secretFileWarning(key: string, file: string): Promise<string[]> {
  const mode = (await stat(file)).mode & 0o777;
  if ((mode & 0o044) === 0) return [];
  return [`${key}: ${file} is readable by ${mode & 0o004 ? 'any user' : 'its group'} (mode ${mode.toString(8).padStart(4, '0')}); restrict it: chmod 600 ${file}`];
}
