import { execFile } from 'node:child_process';
import { mkdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startLibrarySim, type LibrarySim } from '../helpers/library.js';
import { ROOT } from '../helpers/spawn.js';

/**
 * The published package, as a user gets it: `npm pack` (dist/ as built by `npm run test:package`),
 * the tarball installed into an empty project from the local npm cache, and there the library
 * imported (ESM and CJS), the official openai SDK driven through attestedFetch against the
 * simulator, and both programs run from node_modules/.bin.
 */
const run = promisify(execFile);
const sh = (cmd: string, args: string[], cwd: string, env: Record<string, string> = {}) =>
  run(cmd, args, { cwd, env: { ...process.env, HTTPS_PROXY: '', https_proxy: '', npm_config_audit: 'false', npm_config_fund: 'false', ...env }, maxBuffer: 16 * 1024 * 1024 });

let s: LibrarySim;
let app: string;
let files: string[];
beforeAll(async () => {
  s = await startLibrarySim();
  app = join(s.dir, 'app');
  await mkdir(app);
  const packed = await sh('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', s.dir], ROOT);
  const [info] = JSON.parse(packed.stdout) as { filename: string; files: { path: string }[] }[];
  files = (info?.files ?? []).map((f) => f.path);
  await writeFile(join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true, type: 'module' }));
  await sh('npm', ['install', '--prefer-offline', '--no-package-lock', join(s.dir, info?.filename as string), 'openai'], app);
}, 240_000);
afterAll(async () => {
  await s?.close();
  if (app) await rm(app, { recursive: true, force: true });
});

describe('the package as installed from its tarball', () => {
  test('the tarball holds the library, its types and the programs; no tests, no bench, no sources', () => {
    expect(files).toEqual(expect.arrayContaining(['dist/index.js', 'dist/index.d.ts', 'bin/tresor-attest.js', 'bin/tresor-verify.js', 'package.json']));
    expect(files.filter((f) => /^(test|bench|src)\//.test(f))).toEqual([]);
  });

  test('openai and busboy are not run-time dependencies of the installed package', async () => {
    const pkg = JSON.parse(await readFile(join(app, 'node_modules/tresor-attest/package.json'), 'utf8')) as { dependencies: Record<string, string>; peerDependenciesMeta: Record<string, { optional: boolean }> };
    expect(Object.keys(pkg.dependencies)).not.toContain('openai');
    expect(Object.keys(pkg.dependencies)).not.toContain('busboy');
    expect(pkg.peerDependenciesMeta.openai?.optional).toBe(true);
  });

  test('ESM: the openai SDK through attestedFetch against the simulator, attested, its receipt verified; a fault is the named error', async () => {
    const script = `
      import OpenAI from 'openai';
      import { attestedFetch, AttestationError, MeasurementNotAllowedError } from 'tresor-attest';
      const o = JSON.parse(process.env.LIB_OPTIONS);
      const fetch = attestedFetch({ ...o, receipts: 'audit' });
      const client = new OpenAI({ baseURL: o.baseURL, apiKey: 'tr-test', fetch, maxRetries: 0 });
      const { data, response } = await client.chat.completions.create({ model: 'gpt-oss-120b', messages: [{ role: 'user', content: 'from the tarball' }] }).withResponse();
      const v = await fetch.verdictFor(response);
      await fetch.close();
      const bad = attestedFetch({ ...o, releaseRootFile: undefined, upstream: { attestation: { release_root_file: process.env.OTHER_ROOT } } });
      const err = await bad(o.baseURL + '/models').catch((e) => e);
      await bad.close();
      console.log(JSON.stringify({ content: data.choices[0].message.content, verdict: v.verdict, error: err.name, typed: err instanceof MeasurementNotAllowedError, attestationError: err instanceof AttestationError }));
    `;
    await writeFile(join(app, 'esm.mjs'), script);
    const other = await import('../../src/sim/mint/router.js').then((m) => m.createRouterEvidence({}));
    const otherRoot = join(s.dir, 'other-root.pub');
    await writeFile(otherRoot, other.releaseRoot.publicPem);
    const { stdout } = await sh(process.execPath, ['esm.mjs'], app, { LIB_OPTIONS: JSON.stringify(s.options()), OTHER_ROOT: otherRoot });
    const out = JSON.parse(stdout) as Record<string, unknown>;
    expect(out).toMatchObject({ verdict: 'verified', error: 'BundleSignatureInvalid', typed: false, attestationError: true });
    expect(out.content).toContain('from the tarball');
  });

  test('types ship: a strict TypeScript app type-checks against dist/index.d.ts (with openai and undici types)', async () => {
    await writeFile(
      join(app, 'check.ts'),
      `import OpenAI from 'openai';
      import { attestedFetch, AttestedAgent, verdictFor, MeasurementNotAllowedError, verifyNitroDocument, type AttestedOptions, type VerdictSummary } from 'tresor-attest';
      const options: AttestedOptions = { baseURL: 'https://api.tresor.co/v1', releaseRootFile: 'r.pub', receipts: 'audit' };
      const fetch = attestedFetch(options);
      const client = new OpenAI({ baseURL: options.baseURL, apiKey: 'x', fetch });
      const agent: AttestedAgent = fetch.agent;
      export async function f(): Promise<VerdictSummary> {
        const { response } = await client.chat.completions.create({ model: 'm', messages: [] }).withResponse();
        try { verifyNitroDocument(new Uint8Array(), { at: new Date() }); } catch (e) { if (e instanceof MeasurementNotAllowedError) console.log(e.code, e.violations.length); }
        void agent;
        return verdictFor(response);
      }
      // @ts-expect-error: baseURL is required
      attestedFetch({ receipts: 'audit' });
      `,
    );
    await symlink(join(ROOT, 'node_modules/@types'), join(app, 'node_modules/@types'));
    const tsc = join(ROOT, 'node_modules/typescript/bin/tsc');
    await expect(sh(process.execPath, [tsc, '--noEmit', '--strict', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022', '--types', 'node', 'check.ts'], app)).resolves.toBeDefined();
  }, 120_000);

  test('CJS: require() loads the same library (Node >= 20.19 loads ES modules from require)', async () => {
    const { stdout } = await sh(process.execPath, ['-e', "const m = require('tresor-attest'); console.log(typeof m.attestedFetch, typeof m.AttestedAgent, m.SPKIMismatchError.name)"], app);
    expect(stdout.trim()).toBe('function function SPKIMismatchError');
  });

  test('both programs run from node_modules/.bin; the demo runs with the openai package present', async () => {
    expect((await sh(join(app, 'node_modules/.bin/tresor-attest'), ['--help'], app)).stdout).toContain('serve');
    expect((await sh(join(app, 'node_modules/.bin/tresor-verify'), ['--help'], app)).stdout).toContain('receipt');
    const demo = await sh(join(app, 'node_modules/.bin/tresor-attest'), ['demo'], app);
    expect(demo.stdout).toMatch(/verified/);
  }, 120_000);

  test('without the openai package the demo fails clearly (exit 2, ERR_DEMO_NEEDS_OPENAI); the library still loads', async () => {
    await rm(join(app, 'node_modules/openai'), { recursive: true, force: true });
    const demo = await sh(join(app, 'node_modules/.bin/tresor-attest'), ['demo'], app).then(
      () => ({ code: 0, out: '' }),
      (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, out: e.stdout + e.stderr }),
    );
    expect(demo.code).toBe(2);
    expect(demo.out).toContain('ERR_DEMO_NEEDS_OPENAI');
    expect(demo.out).toContain('npm install openai');
    const { stdout } = await sh(process.execPath, ['--input-type=module', '-e', "import('tresor-attest').then((m) => console.log(typeof m.attestedFetch))"], app);
    expect(stdout.trim()).toBe('function');
  });
});
