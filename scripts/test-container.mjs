#!/usr/bin/env node
// npm run test:container: build the Dockerfile (unchanged) with buildah and run the image under
// `podman --runtime runc` the way the README says to run it (read-only root, every capability
// dropped, no new privileges, state on a volume), against the simulator on this host; one chat
// through the official OpenAI SDK, then the healthcheck, the uid, the read-only root and a
// SIGTERM drain are checked, and the image size is printed. Exits non-zero on the first failure.
//
// What it needs: Linux, root (or password-less sudo for apt-get), and Debian's buildah, podman,
// runc and debootstrap (installed with apt-get when missing), network access to a Debian mirror
// (once, for the stand-in base) and to the npm registry (the Dockerfile's `npm ci`). No image
// registry: the `node` base image is replaced by a stand-in made here from a minimal Debian
// (debootstrap) and this machine's Node.js, cached (see CACHE below) so reruns skip it.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, renameSync, rmSync, writeFileSync, appendFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { homedir, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import OpenAI from 'openai';

const ROOT = new URL('..', import.meta.url).pathname;
const CACHE = process.env.TRESOR_CONTAINER_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'tresor-attest', 'container');
const MIRROR = process.env.DEBIAN_MIRROR ?? 'http://deb.debian.org/debian';
const SUITE = 'bookworm';
const NODE_MAJOR = process.versions.node.split('.')[0];
const IMAGE = 'localhost/tresor-attest:container-test';
// A storage of its own under CACHE: the stand-in is tagged as the official `node` image there (so
// the Dockerfile's FROM resolves without a registry) and that name never reaches the machine's store.
const STORE = ['--root', join(CACHE, 'storage'), '--runroot', join(CACHE, 'run'), '--storage-driver', process.env.TRESOR_CONTAINER_STORAGE_DRIVER ?? 'overlay'];
const PODMAN = ['--runtime', 'runc', ...STORE];
/** Open files allowed in the container: this host's soft limit, at most 65536. */
const NOFILE = Math.min(65536, Number(execFileSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).trim()) || 1024);

const step = (msg) => console.log(`test:container: ${msg}`);
/** Run before failing (e.g. print the container's log). */
const diagnostics = [];
const fail = (msg) => {
  for (const d of diagnostics.splice(0)) d();
  console.error(`test:container: FAIL: ${msg}`);
  process.exit(1);
};
function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, ...opts });
  if (r.status !== 0 && !opts.allowFail) fail(`${cmd} ${args.join(' ')} exited ${r.status}:\n${r.stdout ?? ''}${r.stderr ?? ''}`);
  return r;
}
const podman = (args, opts) => run('podman', [...PODMAN, ...args], opts);
const buildah = (args, opts) => run('buildah', [...STORE, ...args], opts);

/** 1. The tools, from Debian's packages. */
function ensureTools() {
  const missing = ['buildah', 'podman', 'runc', 'debootstrap'].filter((t) => spawnSync('sh', ['-c', `command -v ${t}`]).status !== 0);
  if (missing.length === 0) return;
  step(`installing ${missing.join(' ')} with apt-get`);
  run('sh', [join(ROOT, 'scripts/apt-ensure.sh'), missing[0], ...missing, '--', 'container test'], { stdio: 'inherit' });
  const still = missing.filter((t) => spawnSync('sh', ['-c', `command -v ${t}`]).status !== 0);
  if (still.length) fail(`cannot install ${still.join(' ')} (needs apt-get as root); install them and rerun`);
}

/** 2. The stand-in for `node:<major>-slim`: minimal Debian + this machine's node and npm + the `node` user (uid 1000). */
function ensureBase() {
  const tag = `docker.io/library/node:${NODE_MAJOR}-slim`;
  // A machine whose TLS goes through an inspecting proxy trusts its root through NODE_EXTRA_CA_CERTS:
  // the stand-in carries that bundle and variable too, or the Dockerfile's `npm ci` cannot reach the registry.
  const extraCa = process.env.NODE_EXTRA_CA_CERTS && existsSync(process.env.NODE_EXTRA_CA_CERTS) ? process.env.NODE_EXTRA_CA_CERTS : undefined;
  const stamp = `${SUITE} node ${process.versions.node}${extraCa ? ' extra-ca' : ''}`;
  const have = podman(['image', 'inspect', '--format', '{{index .Labels "tresor.standin"}}', tag], { allowFail: true });
  if (have.status === 0 && have.stdout.trim() === stamp) return step(`stand-in base ${tag} (${stamp}) cached in ${CACHE}`);
  const rootfs = join(CACHE, 'debian-rootfs');
  if (!existsSync(join(rootfs, '.complete'))) {
    step(`debootstrap --variant=minbase ${SUITE} (once; cached in ${CACHE})`);
    const tmp = `${rootfs}.tmp`;
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(CACHE, { recursive: true });
    run('debootstrap', ['--variant=minbase', SUITE, tmp, MIRROR], { stdio: 'inherit' });
    writeFileSync(join(tmp, '.complete'), `${SUITE}\n`);
    rmSync(rootfs, { recursive: true, force: true });
    renameSync(tmp, rootfs);
  }
  step(`making the stand-in ${tag} from ${rootfs} and node ${process.versions.node}`);
  const work = mkdtempSync(join(CACHE, 'base-'));
  try {
    const fs = join(work, 'rootfs');
    run('cp', ['-a', rootfs, fs]);
    rmSync(join(fs, '.complete'));
    for (const d of ['usr/share/doc', 'usr/share/man', 'usr/share/info', 'var/cache/apt', 'var/lib/apt/lists']) rmSync(join(fs, d), { recursive: true, force: true });
    // node as the official image has it: /usr/local/bin/node, npm under /usr/local/lib/node_modules.
    const node = realpathSync(process.execPath);
    mkdirSync(join(fs, 'usr/local/bin'), { recursive: true });
    cpSync(node, join(fs, 'usr/local/bin/node'));
    for (const lib of sharedLibs(node)) if (!existsSync(join(fs, lib))) cpSync(realpathSync(lib), join(fs, lib));
    const npmDir = join(dirname(realpathSync(execFileSync('sh', ['-c', 'command -v npm'], { encoding: 'utf8' }).trim())), '..');
    mkdirSync(join(fs, 'usr/local/lib/node_modules'), { recursive: true });
    cpSync(npmDir, join(fs, 'usr/local/lib/node_modules/npm'), { recursive: true });
    run('ln', ['-sf', '../lib/node_modules/npm/bin/npm-cli.js', join(fs, 'usr/local/bin/npm')]);
    run('ln', ['-sf', '../lib/node_modules/npm/bin/npx-cli.js', join(fs, 'usr/local/bin/npx')]);
    appendFileSync(join(fs, 'etc/group'), 'node:x:1000:\n');
    appendFileSync(join(fs, 'etc/passwd'), 'node:x:1000:1000::/home/node:/bin/sh\n');
    mkdirSync(join(fs, 'home/node'), { recursive: true });
    run('chown', ['1000:1000', join(fs, 'home/node')]);
    const changes = ['CMD ["node"]', `LABEL tresor.standin="${stamp}"`, 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'];
    if (extraCa) {
      cpSync(extraCa, join(fs, 'usr/local/share/extra-ca.pem'));
      changes.push('ENV NODE_EXTRA_CA_CERTS=/usr/local/share/extra-ca.pem');
    }
    const tar = join(work, 'rootfs.tar');
    run('tar', ['-C', fs, '--numeric-owner', '-cf', tar, '.']);
    podman(['import', ...changes.flatMap((c) => ['--change', c]), tar, tag]);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** The shared libraries a binary loads (absolute paths, from ldd). */
function sharedLibs(bin) {
  return [...execFileSync('ldd', [bin], { encoding: 'utf8' }).matchAll(/(\/\S+\.so[.\d]*)/g)].map((m) => m[1]);
}

/** 3. The image, from the Dockerfile as it is; docker format, since OCI images drop HEALTHCHECK; layers cached (`npm ci` reruns only when the lock file changes). */
function buildImage() {
  step(`buildah build --format docker --build-arg NODE_VERSION=${NODE_MAJOR} (the Dockerfile unchanged)`);
  buildah(['build', '--format', 'docker', '--layers', '--pull=never', '--network', 'host', '--isolation', 'chroot', '--build-arg', `NODE_VERSION=${NODE_MAJOR}`, '-t', IMAGE, ROOT], { stdio: 'inherit' });
}

const freePort = () =>
  new Promise((resolve) => {
    const srv = createServer().listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });

async function waitFor(what, probe, ms = 60_000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await probe().catch(() => undefined);
    if (v) return v;
    if (Date.now() > end) fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** 4. Run it against the simulator (a process on this host) and check what the README promises. */
async function runAndCheck() {
  const dir = mkdtempSync(join(tmpdir(), 'tresor-container-'));
  // Mounted read-only for the image's node user (uid 1000): the simulator's CA, release-root key and test roots are public.
  chmodSync(dir, 0o755);
  const name = `tresor-attest-test-${process.pid}`;
  const volume = `${name}-state`;
  const simPort = await freePort();
  const listen = await freePort();
  // Chunks 60 ms apart: a stream is still open when SIGTERM arrives.
  const sim = spawn(process.execPath, [join(ROOT, 'bin/tresor-attest.js'), 'sim', '--port', String(simPort), '--write-dir', dir, '--chunk-delay-ms', '60'], { stdio: ['ignore', 'pipe', 'inherit'] });
  let simOut = '';
  sim.stdout.on('data', (c) => (simOut += c));
  const cleanup = () => {
    podman(['rm', '-f', '-t', '0', name], { allowFail: true });
    podman(['volume', 'rm', '-f', volume], { allowFail: true });
    sim.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  };
  process.on('exit', cleanup);
  await waitFor('the simulator', async () => simOut.includes('wrote '));
  const origin = `http://127.0.0.1:${listen}`;
  const key = `tr-${'c'.repeat(96)}`;
  step(`podman --runtime runc run --read-only --cap-drop=ALL --security-opt no-new-privileges (simulator on https://127.0.0.1:${simPort})`);
  podman(['volume', 'create', volume]);
  podman([
    'run', '-d', '--name', name,
    // --read-only-tmpfs=false: podman would otherwise mount writable tmpfs on /tmp, /var/tmp and /run
    // (docker's --read-only does not); the daemon writes nowhere but its volume.
    '--read-only', '--read-only-tmpfs=false', '--cap-drop=ALL', '--security-opt', 'no-new-privileges',
    '--network', 'host',
    // Explicit limits: podman's defaults (1048576 open files, the host's process count) are more
    // than runc may set on some hosts (EPERM, exit 126); and the healthcheck is run on demand below
    // rather than by a systemd timer (there may be no systemd).
    '--ulimit', `nofile=${NOFILE}:${NOFILE}`, '--ulimit', 'nproc=4096:4096', '--health-interval', 'disable',
    '-v', `${volume}:/var/lib/tresor-attest`,
    '-v', `${dir}:/etc/tresor-attest:ro`,
    '-e', `TRESOR_API_KEY=${key}`,
    '-e', 'TRESOR_ATTEST_RELEASE_ROOT_FILE=/etc/tresor-attest/release-root.pub',
    // The simulator's evidence chains to its own software roots: trusted only because the operator says so.
    '-e', 'TRESOR_ATTEST_TEST_ROOTS_FILE=/etc/tresor-attest/test-roots.pem',
    '-e', `TRESOR_ATTEST_TRUST_BUNDLE=https://127.0.0.1:${simPort}/trust/router.json`,
    '-e', `TRESOR_ATTEST_LISTEN=127.0.0.1:${listen}`,
    '-e', `TRESOR_ATTEST_HEALTH_URL=${origin}/healthz`,
    IMAGE, 'serve', '--upstream', `https://127.0.0.1:${simPort}`, '--ca-file', '/etc/tresor-attest/sim-ca.pem',
  ]);
  diagnostics.push(() => {
    const l = podman(['logs', name], { allowFail: true });
    console.error(`container state: ${podman(['inspect', '--format', '{{.State.Status}} exit {{.State.ExitCode}}', name], { allowFail: true }).stdout}container log:\n${l.stdout}${l.stderr}`);
  });
  await waitFor('the daemon to be ready', async () => {
    if (podman(['inspect', '--format', '{{.State.Status}}', name]).stdout.trim() === 'exited') fail('the container exited before it was ready');
    return (await fetch(`${origin}/readyz`)).ok;
  });

  // One chat through the official SDK, and its receipt verified and recorded.
  const client = new OpenAI({ baseURL: `${origin}/v1`, apiKey: 'app-placeholder', maxRetries: 0 });
  const { data: chat, response } = await client.chat.completions.create({ model: 'eu/tresor/gpt-oss-120b', messages: [{ role: 'user', content: 'hello from the container test' }] }).withResponse();
  if (!chat.choices[0]?.message?.content) fail('the chat completion has no content');
  const requestId = response.headers.get('x-request-id');
  const receipt = await (await fetch(`${origin}/receipts/${requestId}?wait=20`)).json();
  if (receipt.verdict !== 'verified') fail(`receipt verdict ${JSON.stringify(receipt)}`);
  step(`chat through the OpenAI SDK: ok (receipt ${receipt.verdict})`);

  // The image's HEALTHCHECK, run by podman.
  const hc = podman(['inspect', '--format', '{{json .Config.Healthcheck}}', name]);
  if (!hc.stdout.includes('healthz')) fail(`no HEALTHCHECK in the image (built without --format docker?): ${hc.stdout}`);
  const health = podman(['healthcheck', 'run', name], { allowFail: true });
  if (health.status !== 0) fail(`podman healthcheck run: exit ${health.status} ${health.stdout}${health.stderr}`);
  step('healthcheck: healthy');

  // The uid the daemon runs as, the read-only root, the writable state volume.
  const uid = podman(['exec', name, 'node', '-e', 'process.stdout.write(`${process.getuid()}:${process.getgid()}`)']).stdout;
  if (uid !== '1000:1000') fail(`runs as ${uid}, expected the node user 1000:1000`);
  const daemonUid = podman(['top', name, 'user', 'args']).stdout;
  if (!/\n\s*node\s+node bin\/tresor-attest\.js serve/.test(daemonUid)) fail(`the daemon process is not the node user's:\n${daemonUid}`);
  const write = podman(['exec', name, 'node', '-e', "require('fs').writeFileSync('/app/x','y')"], { allowFail: true });
  if (write.status === 0 || !/EROFS/.test(write.stderr)) fail(`the root filesystem is writable: ${write.stderr}`);
  const tmpWrite = podman(['exec', name, 'node', '-e', "require('fs').writeFileSync('/tmp/x','y')"], { allowFail: true });
  if (tmpWrite.status === 0) fail('/tmp is writable: the root is not read-only');
  const state = podman(['exec', name, 'node', '-e', "process.stdout.write(require('fs').readdirSync('/var/lib/tresor-attest').join(' '))"]).stdout;
  if (!state.includes('audit')) fail(`no audit log in the state volume: ${state}`);
  const caps = podman(['exec', name, 'node', '-e', "process.stdout.write(require('fs').readFileSync('/proc/self/status','utf8'))"]).stdout;
  if (!/CapEff:\s+0+\n/.test(caps) || !/NoNewPrivs:\s+1/.test(caps)) fail(`capabilities or no_new_privs not as asked:\n${caps}`);
  step(`uid ${uid}, read-only root (EROFS), state volume holds: ${state}; no capabilities, no_new_privs`);

  // SIGTERM while a stream is open: the stream finishes, then the daemon exits 0.
  const stream = await client.chat.completions.create({ model: 'eu/tresor/gpt-oss-120b', stream: true, messages: [{ role: 'user', content: 'a fairly long prompt so that the answer has many chunks in it' }] });
  const it = stream[Symbol.asyncIterator]();
  await it.next();
  const stop = spawn('podman', [...PODMAN, 'stop', '-t', '30', name], { stdio: 'ignore' });
  let chunks = 1;
  let finish = null;
  for (let r = await it.next(); !r.done; r = await it.next()) {
    chunks += 1;
    finish = r.value.choices[0]?.finish_reason ?? finish;
  }
  await new Promise((r) => stop.on('exit', r));
  if (finish !== 'stop') fail(`the stream was cut by SIGTERM after ${chunks} chunks`);
  const exit = podman(['inspect', '--format', '{{.State.ExitCode}}', name]).stdout.trim();
  if (exit !== '0') fail(`exit code ${exit} after SIGTERM; logs:\n${podman(['logs', name], { allowFail: true }).stdout}`);
  const logs = podman(['logs', name]).stdout;
  if (!logs.includes('shutting down: no new connections, draining in-flight requests') || !logs.includes('"msg":"stopped"')) fail(`no drain in the log:\n${logs}`);
  step(`SIGTERM drain: the open stream finished (${chunks} chunks, finish_reason stop), exit 0`);
}

function imageSize() {
  const bytes = Number(podman(['image', 'inspect', '--format', '{{.Size}}', IMAGE]).stdout.trim());
  const base = Number(podman(['image', 'inspect', '--format', '{{.Size}}', `docker.io/library/node:${NODE_MAJOR}-slim`]).stdout.trim());
  const mb = (b) => `${(b / 1e6).toFixed(1)} MB`;
  step(`image size: ${mb(bytes)} (${IMAGE}; the stand-in base is ${mb(base)}, so the layers the Dockerfile adds are ${mb(bytes - base)})`);
}

if (process.platform !== 'linux') fail('needs Linux (buildah, podman, runc)');
ensureTools();
mkdirSync(CACHE, { recursive: true });
ensureBase();
buildImage();
await runAndCheck();
imageSize();
step('PASS');
process.exit(0);
