import { createPrivateKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdir, open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { SimKeys } from './mint/router.js';

/** The first bundle version a fresh key directory publishes (as without one). */
const FIRST_BUNDLE_VERSION = 17;

/**
 * The simulator's long-lived keys in `dir` (created 0700): the release root and the workload
 * identity key (Ed25519, PKCS#8 PEM, 0600), made on first use and read back on every later start,
 * so a daemon keeps trusting the same `release-root.pub` across simulator restarts. Each start
 * publishes the next bundle version (`bundle-version` in `dir`): the bundle embeds test roots
 * minted per run, and a daemon refuses two different bundles under one version.
 */
export async function loadSimKeys(dir: string): Promise<SimKeys> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const releaseRoot = await keyFile(join(dir, 'release-root.key'));
  const identity = await keyFile(join(dir, 'workload-identity.key'));
  const versionFile = join(dir, 'bundle-version');
  const last = Number((await readFile(versionFile, 'utf8').catch(() => '')).trim());
  const bundleVersion = Number.isSafeInteger(last) && last >= FIRST_BUNDLE_VERSION ? last + 1 : FIRST_BUNDLE_VERSION;
  await writePrivate(versionFile, `${bundleVersion}\n`, 'w');
  return { releaseRoot, identity, bundleVersion };
}

async function keyFile(path: string): Promise<KeyObject> {
  const pem = await readFile(path, 'utf8').catch((e: NodeJS.ErrnoException) => {
    if (e.code !== 'ENOENT') throw e;
    return undefined;
  });
  if (pem !== undefined) return createPrivateKey(pem);
  const { privateKey } = generateKeyPairSync('ed25519');
  await writePrivate(path, privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, 'wx');
  return privateKey;
}

async function writePrivate(path: string, text: string, flags: 'w' | 'wx'): Promise<void> {
  const fh = await open(path, flags, 0o600);
  try {
    await fh.writeFile(text);
  } finally {
    await fh.close();
  }
}
