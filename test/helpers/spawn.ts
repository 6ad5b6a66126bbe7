import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request } from 'undici';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';

export const ROOT = new URL('../../', import.meta.url).pathname;

export interface Spawned {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<number | null>;
}

/** Run one of the built programs (`npm test` builds dist/ first). */
export function spawnBin(bin: 'tresor-attest' | 'tresor-verify', args: string[], env: Record<string, string | undefined> = {}): Spawned {
  const child = spawn(process.execPath, [`${ROOT}bin/${bin}.js`, ...args], {
    cwd: ROOT,
    env: { ...process.env, HTTPS_PROXY: '', https_proxy: '', ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout?.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (err += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, stdout: () => out, stderr: () => err, exited };
}

/** Wait until `predicate(stdout)` holds (bounded). */
export async function waitFor(s: Spawned, predicate: (out: string) => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!predicate(s.stdout())) {
    if (Date.now() > end) throw new Error(`timed out; stdout: ${s.stdout()} stderr: ${s.stderr()}`);
    if (s.child.exitCode !== null) throw new Error(`exited ${s.child.exitCode}; stderr: ${s.stderr()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Peak resident set size (kB) of a process, from procfs. */
export function peakRssKb(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? 0);
}

/**
 * A scratch directory for one test file and the programs its tests start: created before the
 * file's tests, and after them every program still registered in `running` is stopped (SIGTERM,
 * awaited) and the directory removed.
 */
export function processScratch(prefix: string): { readonly dir: string; running: Spawned[] } {
  let dir: string | undefined;
  const running: Spawned[] = [];
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), prefix));
  });
  afterAll(async () => {
    for (const p of running) {
      p.child.kill('SIGTERM');
      await p.exited;
    }
    if (dir) await rm(dir, { recursive: true, force: true });
  });
  return {
    get dir() {
      if (dir === undefined) throw new Error('processScratch: the directory exists only inside the tests');
      return dir;
    },
    running,
  };
}

/**
 * `tresor-attest serve` as a real process with one upstream of `profile` (extra YAML lines for its
 * section, the simulator's CA as `ca_file`), then one chat completion through it. `verdict()`
 * waits for that completion's receipt verdict.
 */
export async function serveOneUpstream(o: {
  /** Where the config file (`<name>.yaml`) goes. */
  dir: string;
  name: string;
  stateDir: string;
  url: string;
  profile: string;
  caFile: string;
  section: string[];
  apiKey: string;
  running: Spawned[];
}) {
  const config = join(o.dir, `${o.name}.yaml`);
  const lines = [`state_dir: ${o.stateDir}`, 'upstreams:', `  - name: ${o.profile}`, `    url: ${o.url}`, '    listen: 127.0.0.1:0', `    profile: ${o.profile}`, `    ca_file: ${o.caFile}`, ...o.section.map((l) => `    ${l}`), ''];
  await writeFile(config, lines.join('\n'));
  const d = spawnBin('tresor-attest', ['serve', '--config', config], { TRESOR_API_KEY: o.apiKey });
  o.running.push(d);
  await waitFor(d, (out) => out.includes('serving OPENAI_BASE_URL='), 20_000);
  const base = /serving OPENAI_BASE_URL=(http:\/\/[^"\s]+)/.exec(d.stdout())?.[1] as string;
  const res = await request(`${base}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'eu/tresor/gpt-oss-120b', messages: [{ role: 'user', content: `over ${o.name}` }] }),
  });
  const origin = base.replace(/\/v1$/, '');
  const verdict = async () => (await (await request(`${origin}/receipts/${res.headers['x-request-id'] as string}?wait=20`)).body.json()) as { verdict: string; receipt_id: string };
  return { res, verdict };
}
