import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, chown, cp, mkdir, mkdtemp, readdir, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startSimulator, type RunningSimulator } from '../../src/sim/index.js';
import { createRouterEvidence, type RouterEvidence } from '../../src/sim/mint/router.js';
import { TEST_ROOTS_FILE, simTestRootsPem } from '../../src/sim/mint/test-roots.js';
import { ROOT } from '../helpers/spawn.js';
import { envOf, execForm, readDockerfile } from './dockerfile.js';

/**
 * What the image does, without a container engine: the Dockerfile's own ENTRYPOINT and CMD run from
 * a copy of the runtime tree (dist, bin, certs, package.json; node_modules linked) that is mounted
 * read-only in a private mount namespace, as an unprivileged user (nobody), with state on a
 * writable directory. Needs root (to switch user and mount); skipped, saying so, otherwise.
 */
const NOBODY = 65534;
const canRun = process.getuid?.() === 0 && existsSync('/usr/bin/setpriv') && existsSync(`${ROOT}dist/cli/tresor-attest.js`);
const canMount = canRun && spawnSync('unshare', ['-m', 'true']).status === 0;
if (!canRun) console.warn('unprivileged image-entrypoint test SKIPPED: needs root, setpriv and a built dist/ (npm run build)');

const ins = readDockerfile();
const lastStage = Math.max(...ins.map((i) => i.stage));
const entrypoint = execForm(ins.find((i) => i.op === 'ENTRYPOINT' && i.stage === lastStage)?.args ?? '[]');
const cmd = execForm(ins.find((i) => i.op === 'CMD' && i.stage === lastStage)?.args ?? '[]');

describe.skipIf(!canRun)('the image entrypoint as an unprivileged user on a read-only tree', () => {
  let sim: RunningSimulator;
  let evidence: RouterEvidence;
  let base: string;
  let app: string;
  let stateDir: string;
  let child: ChildProcess;
  let out = '';
  let exited: Promise<number | null>;

  beforeAll(async () => {
    evidence = await createRouterEvidence();
    sim = await startSimulator({ evidence });
    base = await mkdtemp(join(tmpdir(), 'tresor-image-'));
    await chmod(base, 0o755);
    // The runtime stage's tree (see the Dockerfile's COPY lines).
    app = join(base, 'app');
    await mkdir(app);
    for (const p of ['dist', 'bin', 'certs', 'package.json', 'config.example.yaml']) await cp(join(ROOT, p), join(app, p), { recursive: true });
    await symlink(join(ROOT, 'node_modules'), join(app, 'node_modules'));
    spawnSync('chmod', ['-R', 'a-w', app]);
    const trust = join(base, 'trust');
    await mkdir(trust, { mode: 0o755 });
    await writeFile(join(trust, 'ca.pem'), sim.caPem, { mode: 0o644 });
    await writeFile(join(trust, 'release-root.pub'), evidence.releaseRoot.publicPem, { mode: 0o644 });
    await writeFile(join(trust, TEST_ROOTS_FILE), simTestRootsPem({ evidence }), { mode: 0o644 });
    // The volume: an empty directory the unprivileged user owns; the daemon creates its state below.
    const volume = join(base, 'volume');
    await mkdir(volume, { mode: 0o755 });
    await chown(volume, NOBODY, NOBODY);
    stateDir = join(volume, 'tresor-attest');

    const imageEnv = envOf(ins, lastStage);
    const env = {
      PATH: '/usr/local/bin:/usr/bin:/bin',
      HOME: '/nonexistent',
      ...imageEnv,
      TRESOR_ATTEST_STATE_DIR: stateDir, // the image's /var/lib/tresor-attest
      TRESOR_ATTEST_LISTEN: '127.0.0.1:0',
      TRESOR_ATTEST_UPSTREAM_URL: sim.url,
      TRESOR_ATTEST_CA_FILE: join(trust, 'ca.pem'),
      TRESOR_ATTEST_RELEASE_ROOT_FILE: join(trust, 'release-root.pub'),
      TRESOR_ATTEST_TRUST_BUNDLE: evidence.bundleUrl,
      TRESOR_ATTEST_TEST_ROOTS_FILE: join(trust, TEST_ROOTS_FILE),
      TRESOR_ATTEST_SHUTDOWN_GRACE_SECONDS: '20',
      TRESOR_API_KEY: `tr-${'7'.repeat(64)}`,
    };
    const program = [...entrypoint, ...cmd].map((a, i) => (i === 0 && a === 'node' ? process.execPath : a));
    const asNobody = ['setpriv', `--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', '--no-new-privs', ...program];
    // Every step execs the next, so the spawned pid is the daemon itself (signals go straight to it).
    const argv = canMount
      ? ['unshare', '-m', '--', 'sh', '-c', 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"', app, ...asNobody]
      : asNobody;
    child = spawn(argv[0] as string, argv.slice(1), { cwd: app, env, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout?.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr?.on('data', (c: Buffer) => (out += c.toString()));
    exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
    const end = Date.now() + 20_000;
    while (!out.includes('serving OPENAI_BASE_URL=')) {
      if (Date.now() > end || child.exitCode !== null) throw new Error(`the daemon did not start: ${out}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }, 60_000);

  afterAll(async () => {
    if (child && child.exitCode === null) child.kill('SIGKILL');
    await sim?.close();
    if (base) {
      spawnSync('chmod', ['-R', 'u+w', base]);
      await rm(base, { recursive: true, force: true });
    }
  });

  test('runs as nobody from a read-only tree, writes only its 0700 state, and drains an in-flight stream on SIGTERM', async () => {
    const origin = /serving OPENAI_BASE_URL=(http:\/\/[^/"\s]+)\/v1/.exec(out)?.[1] as string;
    const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
    expect(/^Uid:\s+(\d+)\s+(\d+)/m.exec(status)?.slice(1)).toEqual([String(NOBODY), String(NOBODY)]);
    expect(/^NoNewPrivs:\s+1/m.test(status)).toBe(true);
    if (canMount) {
      const mount = readFileSync(`/proc/${child.pid}/mountinfo`, 'utf8').split('\n').find((l) => l.split(' ')[4] === app);
      expect(mount?.split(' ')[5]).toMatch(/^ro\b/);
    } else console.warn('unshare -m unavailable: the tree is only made unwritable by permissions, not mounted read-only');

    // Readiness: attested before serving.
    const deadline = Date.now() + 15_000;
    while ((await fetch(`${origin}/readyz`)).status !== 200 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const json = await fetch(`${origin}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'eu/tresor/gpt-oss-120b', messages: [{ role: 'user', content: 'hi' }] }) });
    expect(json.status).toBe(200);
    const id = ((await json.json()) as { tresor: { receipt_id: string } }).tresor.receipt_id;
    expect(((await (await fetch(`${origin}/receipts/${id}?wait=10`)).json()) as { verdict: string }).verdict).toBe('verified');

    // A slow stream in flight when SIGTERM arrives.
    sim.faults.chunkDelayMs = 120;
    const res = await fetch(`${origin}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'eu/tresor/gpt-oss-120b', messages: [{ role: 'user', content: 'a slow stream please' }], stream: true }) });
    expect(res.status).toBe(200);
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    let text = new TextDecoder().decode((await reader.read()).value);
    const signalledAt = Date.now();
    child.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 200));
    // No new connections once draining.
    await expect(fetch(`${origin}/healthz`)).rejects.toThrow();
    let streamEndedAt = 0;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    streamEndedAt = Date.now();
    expect(text.trimEnd().endsWith('data: [DONE]')).toBe(true);
    expect(streamEndedAt - signalledAt).toBeGreaterThan(300);
    expect(await exited).toBe(0);
    expect(out).toMatch(/"inFlight":1,.*shutting down/);
    expect(out).toContain('"msg":"stopped"');

    // State: created 0700 by the unprivileged user; audit files 0600; both receipts recorded.
    const st = await stat(stateDir);
    expect(st.uid).toBe(NOBODY);
    expect(st.mode & 0o777).toBe(0o700);
    const auditDir = join(stateDir, 'audit');
    const files = (await readdir(auditDir)).filter((f) => f.startsWith('audit-'));
    expect(files.length).toBeGreaterThan(0);
    const lines: { type: string; verdict: string }[] = [];
    for (const f of files) {
      expect((await stat(join(auditDir, f))).mode & 0o777).toBe(0o600);
      for (const l of readFileSync(join(auditDir, f), 'utf8').split('\n').filter(Boolean)) lines.push(JSON.parse(l) as { type: string; verdict: string });
    }
    expect(lines.filter((l) => l.type === 'receipt').map((l) => l.verdict)).toEqual(['verified', 'verified']);
    // The pin's evidence, written by that user too: 0600 in a 0700 directory.
    const evidence = join(auditDir, 'evidence');
    expect((await stat(evidence)).mode & 0o777).toBe(0o700);
    for (const f of await readdir(evidence)) {
      const e = await stat(join(evidence, f));
      expect([e.uid, e.mode & 0o777]).toEqual([NOBODY, 0o600]);
    }
    // Nothing else written by that user in the world-writable places (the read-only root assumption).
    const stray = spawnSync('find', ['/tmp', '/var/tmp', '/dev/shm', '-xdev', '-user', String(NOBODY), '-newer', join(app, 'package.json')], { encoding: 'utf8' })
      .stdout.split('\n')
      .filter((p) => p && !p.startsWith(join(base, 'volume')));
    expect(stray).toEqual([]);
  });
});
