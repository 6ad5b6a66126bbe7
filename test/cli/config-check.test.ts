import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { createEd25519Signer } from '../../src/sim/mint/trust.js';
import { processScratch, spawnBin } from '../helpers/spawn.js';

const scratch = processScratch('tresor-config-check-');

/** A config whose every file exists, with one of them swapped for `bad` (a missing path or a directory). */
async function config(name: string, bad: Partial<Record<'release_root_file' | 'api_key_file' | 'ca_file' | 'state_dir', string>> = {}): Promise<string> {
  const d = join(scratch.dir, name);
  await mkdir(d, { recursive: true });
  await writeFile(join(d, 'release-root.pub'), createEd25519Signer('root').publicPem);
  await writeFile(join(d, 'api.key'), 'tr-secret-value\n', { mode: 0o600 });
  await chmod(join(d, 'api.key'), 0o600);
  await writeFile(join(d, 'ca.pem'), '-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n');
  const files = { release_root_file: join(d, 'release-root.pub'), api_key_file: join(d, 'api.key'), ca_file: join(d, 'ca.pem'), state_dir: join(d, 'state'), ...bad };
  const file = join(d, 'config.yaml');
  await writeFile(
    file,
    `state_dir: ${files.state_dir}\nupstreams:\n  - name: main\n    url: https://127.0.0.1:9/v1\n    listen: 127.0.0.1:0\n    ca_file: ${files.ca_file}\n    api_key_file: ${files.api_key_file}\n    attestation:\n      release_root_file: ${files.release_root_file}\n`,
  );
  return file;
}

async function run(args: string[]): Promise<{ code: number | null; stderr: string; stdout: string }> {
  const p = spawnBin('tresor-attest', args, { HOME: scratch.dir, TRESOR_API_KEY: '' });
  scratch.running.push(p);
  const code = await p.exited;
  return { code, stderr: p.stderr(), stdout: p.stdout() };
}

describe('config check refuses what serve refuses before listening', () => {
  const cases: [string, (d: string) => Partial<Record<'release_root_file' | 'api_key_file' | 'ca_file' | 'state_dir', string>>, RegExp][] = [
    ['missing release root', (d) => ({ release_root_file: join(d, 'nope.pub') }), /attestation\.release_root_file: cannot read .*ENOENT/],
    ['unreadable release root (a directory)', (d) => ({ release_root_file: d }), /attestation\.release_root_file: cannot read .*EISDIR/],
    ['missing API key file', (d) => ({ api_key_file: join(d, 'nope.key') }), /api_key_file: cannot read .*ENOENT/],
    ['unreadable API key file (a directory)', (d) => ({ api_key_file: d }), /api_key_file: cannot read .*EISDIR/],
    ['missing CA file', (d) => ({ ca_file: join(d, 'nope.pem') }), /ca_file: cannot read .*ENOENT/],
    ['state_dir under a file', (d) => ({ state_dir: join(d, 'api.key', 'state') }), /state_dir: cannot use .*(ENOTDIR|is not a directory)/],
  ];
  test.each(cases)('%s: the same message and exit code 2 from both', async (name, bad, message) => {
    const file = await config(name.replace(/\W+/g, '-'), bad(join(scratch.dir, name.replace(/\W+/g, '-'))));
    const check = await run(['config', 'check', file]);
    const serve = await run(['serve', '--config', file]);
    expect(check.code).toBe(2);
    expect(check.stdout).not.toContain('configuration is valid');
    expect(check.stderr).toMatch(message);
    expect(serve.code).toBe(2);
    expect(serve.stderr).toBe(check.stderr);
  });

  test('a valid configuration passes; a key file others can read is warned about', async () => {
    const file = await config('good');
    const ok = await run(['config', 'check', file]);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain('configuration is valid');
    expect(ok.stderr).toBe('');
    await chmod(join(scratch.dir, 'good', 'api.key'), 0o644);
    const warned = await run(['config', 'check', file]);
    expect(warned.code).toBe(0);
    expect(warned.stderr).toContain(`warning: upstreams.main.api_key_file: ${join(scratch.dir, 'good', 'api.key')} is readable by any user (mode 0644); restrict it: chmod 600`);
    expect(warned.stderr).not.toContain('tr-secret-value');
  });
});
