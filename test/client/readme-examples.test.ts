import { execFile } from 'node:child_process';
import { mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { startLibrarySim, type LibrarySim } from '../helpers/library.js';
import { ROOT } from '../helpers/spawn.js';

/**
 * The README's "Use it as a library" examples, run verbatim as programs against the simulator
 * (attestation enforced, receipts verified), importing the built package by name. Only the
 * `const options = …;` line is extended with the simulator's CA, release root and bundle URL.
 */
const NAMES = ['openai', 'ai-sdk', 'langchain', 'undici'] as const;
let s: LibrarySim;
let dir: string;

function examples(readme: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of readme.matchAll(/<!-- example: ([a-z-]+) -->\n```js\n([\s\S]*?)```/g)) out.set(m[1] as string, m[2] as string);
  return out;
}

function runExample(name: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [join(dir, `${name}.mjs`)], { cwd: dir, env: { ...process.env, HTTPS_PROXY: '', https_proxy: '', TRESOR_API_KEY: 'tr-readme' } }, (err, stdout, stderr) =>
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

beforeAll(async () => {
  s = await startLibrarySim();
  dir = join(s.dir, 'readme');
  for (const scope of ['@ai-sdk', '@langchain']) await mkdir(join(dir, 'node_modules', scope), { recursive: true });
  // The package by name (its dist/, as built), and the client libraries the examples import.
  await symlink(ROOT, join(dir, 'node_modules/tresor-attest'));
  for (const dep of ['openai', 'ai', '@ai-sdk/openai', '@langchain/openai', '@langchain/core', 'undici']) await symlink(join(ROOT, 'node_modules', dep), join(dir, 'node_modules', dep));
  const sim = JSON.stringify({ baseURL: s.baseURL, ...s.files, trustBundle: s.evidence.bundleUrl, env: {} });
  const found = examples(await readFile(join(ROOT, 'README.md'), 'utf8'));
  for (const name of NAMES) {
    const code = found.get(name);
    if (!code) throw new Error(`README has no example ${name}`);
    const lines = code.split('\n').filter((l) => l.startsWith('const options = '));
    if (lines.length !== 1) throw new Error(`example ${name}: expected one "const options = …;" line`);
    const line = lines[0] as string;
    await writeFile(join(dir, `${name}.mjs`), code.replace(line, `const options = { ...${line.slice('const options = '.length, -1)}, ...${sim} };`));
  }
});
afterEach(() => {
  s.evidence.faults.wrongMeasurement = false;
});
afterAll(() => s.close());

describe('the README library examples against the simulator', () => {
  test.each(NAMES)('%s: attested, answered, its receipt verified', async (name) => {
    const r = await runExample(name);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Simulated answer');
    expect(r.stdout).toMatch(/^receipt verified/m);
  });

  test.each(NAMES)('%s: an attestation fault is MeasurementNotAllowedError, attested once, and the simulator gets no application byte', async (name) => {
    s.evidence.faults.wrongMeasurement = true;
    const before = s.traffic();
    const r = await runExample(name);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('refused: MeasurementNotAllowedError ERR_ATTEST_MEASUREMENT_NOT_ALLOWED');
    // One attestation, however often the client retried; no application request.
    const after = s.traffic();
    expect(after.attestations - before.attestations).toBe(1);
    expect(after.application).toBe(before.application);
  });
});
