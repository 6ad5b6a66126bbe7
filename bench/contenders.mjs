// The contenders for the forwarding scenarios, each its own process (so its own CPU time and RSS
// can be read from procfs): direct (no proxy), the bare undici passthrough, nginx, tresor-attest.
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, openSync, readFileSync, writeFileSync, closeSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { request } from 'undici';
import { API_KEY } from './load.mjs';

const ROOT = new URL('../', import.meta.url).pathname;

/** BENCH_CPU_PROF_DIR=DIR runs the Node contenders under `node --cpu-prof` (one DIR/<name>/ each). */
/** BENCH_HEAP_SNAPSHOT_DIR=DIR: a Node contender writes a heap snapshot into DIR/<name>/ on SIGUSR2 (sse-c1000 sends it at peak). */
/**
 * BENCH_PERF_DIR=DIR: `perf record` (every thread, kernel included, call graphs) follows each Node
 * contender from the moment it is ready until it is stopped, into DIR/<name>/perf-<pid>.data; the
 * contender runs with `--perf-basic-prof-only-functions` so that JavaScript frames have names.
 */
const profArgs = (name) => {
  if (process.env.BENCH_HEAP_SNAPSHOT_DIR) mkdirSync(join(process.env.BENCH_HEAP_SNAPSHOT_DIR, name), { recursive: true });
  return [
    ...(process.env.BENCH_PERF_DIR ? ['--perf-basic-prof-only-functions'] : []),
    // BENCH_NODE_ARGS='--trace-deopt ...': extra V8/Node flags for the Node contenders (diagnosis; output in their logs).
    ...(process.env.BENCH_NODE_ARGS ? process.env.BENCH_NODE_ARGS.split(' ').filter(Boolean) : []),
    ...(process.env.BENCH_CPU_PROF_DIR ? ['--cpu-prof', `--cpu-prof-dir=${join(process.env.BENCH_CPU_PROF_DIR, name)}`] : []),
    ...(process.env.BENCH_HEAP_SNAPSHOT_DIR ? ['--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${join(process.env.BENCH_HEAP_SNAPSHOT_DIR, name)}`] : []),
  ];
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Spawn `cmd`, its output to `logFile`; resolves once `ready()` returns a value (polled; `log` is the
 * output so far), bounded in time.
 */
async function spawnLogged(cmd, args, { logFile, ready, env, ms = 20_000, perfName }) {
  const fd = openSync(logFile, 'w');
  const child = spawn(cmd, args, { cwd: ROOT, env: { ...process.env, HTTPS_PROXY: '', https_proxy: '', ...env }, stdio: ['ignore', fd, fd] });
  closeSync(fd);
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal)));
  const end = Date.now() + ms;
  for (;;) {
    const log = readFileSync(logFile, 'utf8');
    const value = await ready(log);
    if (value) return { child, value, exited, perf: perfName ? await perfRecord(child.pid, perfName) : undefined };
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${cmd} exited early: ${log.slice(-2000)}`);
    if (Date.now() > end) {
      child.kill('SIGKILL');
      throw new Error(`${cmd} did not start in ${ms} ms: ${log.slice(-2000)}`);
    }
    await sleep(20);
  }
}

const matching = (pattern) => (log) => pattern.exec(log)?.[1];

/** `perf record` attached to `pid` (BENCH_PERF_DIR only); resolves once perf has started sampling. */
async function perfRecord(pid, name) {
  if (!process.env.BENCH_PERF_DIR) return undefined;
  const d = join(process.env.BENCH_PERF_DIR, name);
  mkdirSync(d, { recursive: true });
  const perf = spawn('perf', ['record', '-F', '999', '-g', '-e', 'cpu-clock', '-p', String(pid), '-o', join(d, `perf-${pid}.data`)], { stdio: ['ignore', 'ignore', 'pipe'] });
  const exited = new Promise((resolve) => perf.once('exit', resolve));
  await sleep(300);
  return { stop: () => (perf.kill('SIGINT'), exited) };
}

async function stopChild(p) {
  await p.perf?.stop();
  if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGTERM');
  const t = setTimeout(() => p.child.kill('SIGKILL'), 3_000);
  await p.exited;
  clearTimeout(t);
}

async function freePort() {
  const s = net.createServer();
  await new Promise((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}

/** Wait until `origin` answers a chat completion (the contender forwards end to end). */
async function waitForwarding(origin, ms = 20_000) {
  const end = Date.now() + ms;
  for (;;) {
    try {
      const res = await request(`${origin}/v1/models`, { headers: { authorization: `Bearer ${API_KEY}` } });
      await res.body.dump();
      if (res.statusCode === 200) return;
    } catch {
      /* not yet */
    }
    if (Date.now() > end) throw new Error(`${origin} is not forwarding after ${ms} ms`);
    await sleep(50);
  }
}

/** The simulated router in its own process (see sim.mjs). */
export async function startSim(dir, chunkIntervalMs) {
  const p = await spawnLogged(process.execPath, [join(ROOT, 'bench/sim.mjs'), dir, String(chunkIntervalMs)], { logFile: join(dir, 'sim.log'), ready: matching(/^(\{.*\})$/m) });
  return { ...JSON.parse(p.value), pid: p.child.pid, stop: () => stopChild(p) };
}

const direct = {
  name: 'direct',
  note: 'client → simulator over TLS (the physical limit; no proxy process)',
  available: () => ({ ok: true }),
  async start(sim) {
    return { origin: sim.url, caFile: sim.caFile, pid: undefined, stop: async () => undefined };
  },
};

/** A Node proxy from bench/ (`script` with `args` after the simulator's URL and CA); `settlePath` answers its receipt counters. */
function benchProxy(name, note, script, { args = [], only, settlePath, nodeArgs = [] } = {}) {
  return {
    name,
    note,
    ...(only ? { only } : {}),
    available: () => ({ ok: true }),
    async start(sim, dir) {
      const state = settlePath ? mkdtempSync(join(dir, `${name}-`)) : undefined;
      const argv = [...profArgs(name), ...nodeArgs, join(ROOT, 'bench', script), sim.url, sim.caFile, ...(state ? [state] : []), ...args];
      const p = await spawnLogged(process.execPath, argv, { logFile: join(dir, `${name}.log`), ready: matching(/listening (http:\/\/\S+)/), perfName: name });
      const origin = p.value;
      await waitForwarding(origin);
      return { origin, pid: p.child.pid, stop: () => stopChild(p), ...(settlePath ? { settle: () => settleCounters(`${origin}${settlePath}`) } : {}) };
    },
  };
}

/**
 * Polls `url` (bounded) until no receipt is pending, so their CPU counts; returns the counters (`pick`
 * finds them in the answer). Every 100 ms: each poll is counted in the contender's CPU (the daemon's
 * `/status` costs ~0.3 ms), and a run's receipts can take seconds to drain.
 */
async function settleCounters(url, pick = (answer) => answer, ms = 30_000) {
  const end = Date.now() + ms;
  for (;;) {
    const res = await request(url).catch(() => undefined);
    const r = res ? (pick(await res.body.json()) ?? null) : null;
    if (!r || r.pending === 0 || Date.now() > end) return r;
    await sleep(100);
  }
}

const passthrough = benchProxy('passthrough', 'bare undici Pool-based Node reverse proxy, no checks (bench/passthrough.mjs)', 'passthrough.mjs');
// The same passthrough speaking HTTP/2 to the simulator: what Node's HTTP/2 client costs by itself (the
// `tresor-attest` rows speak HTTP/2 to the router).
const FLOOR_SCENARIOS = ['json-c16', 'json-c64', 'sse-c100'];
const passthroughH2 = benchProxy('passthrough-h2', 'the bare passthrough with HTTP/2 to the simulator (undici allowH2)', 'passthrough.mjs', { args: ['--h2'], only: FLOOR_SCENARIOS });
// #20's floor for receipts, side by side: the passthrough plus only the receipt's irreducible work
// (both digests, the journal line synced before the end of the answer, the receipt GET, ES256, the
// synced audit and archive lines; bench/floor-proxy.mjs), over HTTP/1.1 and over HTTP/2.
// Over HTTP/1.1 also the upload (the request digest over every byte is the receipt's part of it).
const floorReceipts = benchProxy('floor-receipts', "the passthrough plus a receipt's irreducible work, HTTP/1.1 (bench/floor-proxy.mjs)", 'floor-proxy.mjs', { only: [...FLOOR_SCENARIOS, 'upload'], settlePath: '/__floor' });
// The passthrough plus only the receipt's GET and ES256 check (no digests, no durability, no record):
// what fetching and verifying every receipt costs by itself (bench/floor-proxy.mjs --fetch-verify-only).
const floorFetchVerify = benchProxy('floor-fetch-verify', "the passthrough plus only each receipt's GET and ES256 check, HTTP/1.1 (bench/floor-proxy.mjs --fetch-verify-only)", 'floor-proxy.mjs', { args: ['--fetch-verify-only'], only: FLOOR_SCENARIOS, settlePath: '/__floor' });
// The passthrough plus only both digests (bench/floor-proxy.mjs --digest-only), for the upload: what
// hashing every uploaded byte, which a receipt needs, costs by itself in CPU per MB and in MB/s.
const floorDigest = benchProxy('floor-digest', 'the passthrough plus only the request and response SHA-256, HTTP/1.1 (bench/floor-proxy.mjs --digest-only)', 'floor-proxy.mjs', { args: ['--digest-only'], only: ['upload'], settlePath: '/__floor' });
const floorReceiptsH2 = benchProxy('floor-receipts-h2', "the passthrough plus a receipt's irreducible work, HTTP/2 (bench/floor-proxy.mjs --h2)", 'floor-proxy.mjs', { args: ['--h2'], only: FLOOR_SCENARIOS, settlePath: '/__floor' });

const NGINX = '/usr/sbin/nginx';
function nginxVersion() {
  const r = spawnSync(NGINX, ['-v'], { encoding: 'utf8' });
  return r.status === 0 ? /nginx\/(\S+)/.exec(r.stderr)?.[1] : undefined;
}

const nginx = {
  name: 'nginx',
  get note() {
    return `nginx ${nginxVersion() ?? '?'} reverse proxy, one worker (master_process off), TLS upstream keepalive, proxy_buffering off`;
  },
  available() {
    return nginxVersion() ? { ok: true } : { ok: false, why: `nginx is not installed at ${NGINX} (apt-get install -y nginx-light); skipped` };
  },
  async start(sim, dir) {
    const d = join(dir, `nginx-${Date.now()}`);
    mkdirSync(d, { recursive: true });
    const port = await freePort();
    const up = new URL(sim.url);
    writeFileSync(
      join(d, 'nginx.conf'),
      `daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile 16384;
pid ${d}/nginx.pid;
error_log ${d}/error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path ${d}/body; proxy_temp_path ${d}/proxy; fastcgi_temp_path ${d}/fcgi; uwsgi_temp_path ${d}/uwsgi; scgi_temp_path ${d}/scgi;
  upstream sim { server ${up.host}; keepalive 1100; keepalive_requests 1000000; keepalive_timeout 60s; }
  server {
    listen 127.0.0.1:${port} backlog=4096;
    keepalive_requests 1000000;
    client_max_body_size 0;
    location / {
      proxy_pass https://sim;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host ${up.host};
      proxy_ssl_trusted_certificate ${sim.caFile};
      proxy_ssl_verify on;
      proxy_ssl_name localhost;
      proxy_ssl_session_reuse on;
      proxy_buffering off;
      proxy_request_buffering off;
      proxy_read_timeout 300s;
      proxy_send_timeout 300s;
    }
  }
}
`,
    );
    const fd = openSync(join(d, 'stdout.log'), 'w');
    const child = spawn(NGINX, ['-p', d, '-c', join(d, 'nginx.conf'), '-e', join(d, 'error.log')], { stdio: ['ignore', fd, fd] });
    closeSync(fd);
    const p = { child, exited: new Promise((r) => child.once('exit', r)) };
    const origin = `http://127.0.0.1:${port}`;
    try {
      await waitForwarding(origin);
    } catch (e) {
      await stopChild(p);
      throw new Error(`nginx: ${e.message}; error.log: ${readFileSync(join(d, 'error.log'), 'utf8').slice(-1500)}`);
    }
    return { origin, pid: child.pid, stop: () => stopChild(p) };
  },
};

/**
 * The daemon's config file for the bench: enforce attestation against the simulator's evidence.
 * The simulator's CA reaches the daemon like a public router's CA would, through the system store
 * (NODE_EXTRA_CA_CERTS), unless `caFile` asks for the `ca_file` setting (private CAs).
 */
export function daemonConfig(sim, dir, receipts, caFile = false, listen = '127.0.0.1:0', http2 = undefined, heapGrowing = undefined, connections = undefined) {
  return {
    ...(heapGrowing === undefined ? {} : { memory: { heap_growing_percent: heapGrowing } }),
    // The default log level (one line per request); BENCH_DAEMON_LOG_LEVEL=warn measures the daemon without it.
    log: { level: process.env.BENCH_DAEMON_LOG_LEVEL ?? 'info', format: 'json' },
    state_dir: join(dir, 'state'),
    shutdown_grace_seconds: 2,
    upstreams: [
      {
        name: 'tresor',
        url: sim.url,
        listen,
        ...(caFile ? { ca_file: sim.caFile } : {}),
        api_key_env: 'TRESOR_API_KEY',
        max_body_bytes: 256 * 1024 * 1024,
        // `http2`: undefined is the default ('streams'). 1,000 concurrent streams over HTTP/1.1 need 1,000
        // upstream connections: those rows get `connections` 1,100. Over HTTP/2 they share a few sessions,
        // and the other rows keep the default pool (128 connections), as a deployment would.
        pool: { keep_alive_seconds: 60, ...(http2 === undefined ? {} : { http2 }), ...(connections === undefined ? {} : { connections }) },
        attestation: { mode: 'enforce', release_root_file: sim.rootFile, trust_bundle: sim.bundleUrl, test_roots_file: sim.testRootsFile },
        // Every receipt fetched and verified: the default rate limit (50 fetches/s) is far below the bench's load.
        ...(receipts ? { receipts: { mode: receipts, ...(receipts === 'off' ? {} : { fetches_per_second: 100_000 }) } } : {}),
      },
    ],
  };
}

/** Does this build accept `receipts.mode` in its config (issue 4)? Asked once per mode. */
const receiptModes = new Map();
function receiptsSupported(sim, dir, mode) {
  if (!receiptModes.has(mode)) {
    const file = join(dir, `check-${mode}.json`);
    writeFileSync(file, JSON.stringify(daemonConfig(sim, dir, mode)));
    const r = spawnSync(process.execPath, [join(ROOT, 'bin/tresor-attest.js'), 'config', 'check', file], { encoding: 'utf8', env: { ...process.env, TRESOR_API_KEY: API_KEY } });
    receiptModes.set(mode, r.status === 0);
  }
  return receiptModes.get(mode);
}

/** Start the daemon from a config file; `ready: false` returns as soon as it listens (cold attestation). */
export async function startDaemonProcess(sim, dir, { receipts, ready = true, tag = 'tresor', caFile = false, root = ROOT, http2, heapGrowing, connections, nodeArgs = [] } = {}) {
  const d = join(dir, `${tag}-${Date.now()}-${Math.random().toString(16).slice(2, 6)}`);
  mkdirSync(d, { recursive: true });
  const cfg = join(d, 'config.json');
  const port = await freePort();
  writeFileSync(cfg, JSON.stringify(daemonConfig(sim, d, receipts, caFile, `127.0.0.1:${port}`, http2, heapGrowing, connections)));
  const args = [...profArgs(tag), ...nodeArgs, join(root, 'bin/tresor-attest.js'), 'serve', '--config', cfg];
  const origin = `http://127.0.0.1:${port}`;
  const answers = (path) => async () => {
    const res = await request(`${origin}${path}`).catch(() => undefined);
    await res?.body.dump();
    return res?.statusCode === 200;
  };
  const env = { TRESOR_API_KEY: API_KEY, ...(caFile ? {} : { NODE_EXTRA_CA_CERTS: sim.caFile }) };
  const p = await spawnLogged(process.execPath, args, { logFile: join(d, 'daemon.log'), ready: answers('/healthz'), env, ms: 30_000, perfName: tag });
  const t0 = Date.now();
  if (ready) {
    while (!(await answers('/readyz')())) {
      if (Date.now() - t0 > 30_000) throw new Error(`tresor-attest not ready after 30 s: ${readFileSync(join(d, 'daemon.log'), 'utf8').slice(-2000)}`);
      await sleep(10);
    }
  }
  /** Waits (bounded) until no receipt job is pending, so their CPU counts; returns the receipt counters. */
  const settle = () => settleCounters(`${origin}/status`, (status) => status.upstreams?.[0]?.receipts);
  return { origin, pid: p.child.pid, dir: d, readyMs: ready ? Date.now() - t0 : undefined, settle, stop: () => stopChild(p) };
}

const HTTP2_NOTE = {
  default: "HTTP/2 to the router for streams, HTTP/1.1 for the rest (the default, pool.http2: 'streams')",
  true: 'HTTP/2 to the router for every request but an upload (pool.http2: true)',
  false: 'HTTP/1.1 to the router only (pool.http2: false)',
};

function tresor(name, mode, { caFile = false, only, root = ROOT, http2, heapGrowing, connections, nodeArgs } = {}) {
  let supported;
  return {
    name,
    ...(only ? { only } : {}),
    note: `tresor-attest${root === ROOT ? '' : ` built in ${root}`}, attestation enforced, receipts ${mode}${mode === 'audit' ? ' (when the build has them)' : ''}${caFile ? ', simulator CA via ca_file' : ''}, ${HTTP2_NOTE[http2 ?? 'default']}${heapGrowing === undefined ? '' : `, memory.heap_growing_percent ${heapGrowing}`}${nodeArgs?.length ? `, node ${nodeArgs.join(' ')}` : ''}`,
    available(sim, dir) {
      supported ??= receiptsSupported(sim, dir, mode);
      if (mode !== 'audit' && !supported) return { ok: false, why: 'this build has no receipts.mode (issue 4 not merged yet); skipped' };
      return { ok: true, ...(supported ? {} : { why: 'receipts not in this build: attestation only' }) };
    },
    start: (sim, dir) => startDaemonProcess(sim, dir, { receipts: supported ? mode : undefined, tag: name, caFile, root, http2, heapGrowing, connections, nodeArgs }),
    /** Returns as soon as it listens, before its start-up attestation is done. */
    startCold: (sim, dir) => startDaemonProcess(sim, dir, { receipts: supported ? mode : undefined, tag: `${name}-cold`, ready: false, caFile, root, http2, heapGrowing, connections, nodeArgs }),
  };
}

/** Every contender, in run order (A B C D, repeated per round). The first two are the references. */
export const CONTENDERS = [
  direct,
  passthrough,
  passthroughH2,
  floorReceipts,
  floorFetchVerify,
  floorDigest,
  floorReceiptsH2,
  nginx,
  // The daemon as configured by default (`pool.http2: 'streams'`: streams over HTTP/2, the rest over HTTP/1.1).
  tresor('tresor-attest', 'audit'),
  tresor('tresor-attest-strict', 'strict', { only: ['json-c1', 'json-c16', 'sse-c1', 'sse-c100'] }),
  // The same daemon without receipts: what receipts cost, and the baseline for the journal's added latency.
  tresor('tresor-attest-receipts-off', 'off', { only: ['json-c1', 'json-c16', 'json-c64', 'sse-c1', 'sse-c100'] }),
  // The other two `pool.http2` settings. HTTP/1.1 only (the default until #20's eighth round): what
  // streams cost over a connection each. HTTP/2 for every request (the simulator offers h2 and
  // http/1.1): its references are passthrough-h2 and floor-receipts-h2.
  tresor('tresor-attest-http1', 'audit', { http2: false, connections: 1100, only: ['sse-c100', 'sse-c1000'] }),
  tresor('tresor-attest-h2', 'audit', { http2: true, only: FLOOR_SCENARIOS }),
  // With the simulator's CA as `ca_file` (a private CA): what a new upstream connection costs then.
  tresor('tresor-attest-ca-file', 'audit', { caFile: true, only: ['connection'] }),
  // BENCH_BASELINE_ROOT=DIR (another checkout, built): the same daemon rows from that tree, in the same
  // run, for before/after figures on a shared machine (select them with --contenders).
  ...(process.env.BENCH_BASELINE_ROOT
    ? [
        // (Trees before #20's eighth round speak HTTP/1.1 to the router by default: a connection per stream.)
        tresor('baseline-tresor-attest', 'audit', { root: process.env.BENCH_BASELINE_ROOT, connections: 1100 }),
        tresor('baseline-tresor-attest-receipts-off', 'off', { root: process.env.BENCH_BASELINE_ROOT, only: ['json-c1', 'json-c16', 'json-c64', 'sse-c100'] }),
      ]
    : []),
  // BENCH_HEAP_GROWING_PERCENTS=50,75: the `tresor-attest` row again with each `memory.heap_growing_percent`
  // (`tresor-attest-heap50`, ...), to weigh the setting's memory against its CPU in one run.
  ...(process.env.BENCH_HEAP_GROWING_PERCENTS ?? '')
    .split(',')
    .filter(Boolean)
    .map((p) => tresor(`tresor-attest-heap${Number(p)}`, 'audit', { heapGrowing: Number(p) })),
  // BENCH_DAEMON_VARIANTS='semi2=--max-semi-space-size=2;...': the `tresor-attest` row again with extra
  // Node/V8 flags for the daemon alone (`tresor-attest-semi2`, ...), to weigh a flag side by side.
  ...flagVariants(process.env.BENCH_DAEMON_VARIANTS, (tag, nodeArgs) => tresor(`tresor-attest-${tag}`, 'audit', { nodeArgs })),
  // BENCH_PASSTHROUGH_VARIANTS, the same for the bare passthrough (`passthrough-semi2`, ...): what a flag
  // given to the daemon would do for the reference.
  ...flagVariants(process.env.BENCH_PASSTHROUGH_VARIANTS, (tag, nodeArgs) =>
    benchProxy(`passthrough-${tag}`, `the bare passthrough, node ${nodeArgs.join(' ') || '(no flags)'}`, 'passthrough.mjs', { nodeArgs }),
  ),
];

/** `name=--flag --flag;name2=...` → `make(name, flags)` for each (a name alone: no flags). */
function flagVariants(spec, make) {
  return (spec ?? '')
    .split(';')
    .filter(Boolean)
    .map((v) => {
      const at = v.indexOf('=');
      return make(at < 0 ? v : v.slice(0, at), at < 0 ? [] : v.slice(at + 1).split(' ').filter(Boolean));
    });
}
