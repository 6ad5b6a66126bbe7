import net from 'node:net';
import tls from 'node:tls';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { afterEach, beforeAll, describe, expect, test } from 'vitest';
import { resolveConfig } from '../../src/config/load.js';
import { createLogger } from '../../src/log/logger.js';
import { startDaemon, type RunningDaemon } from '../../src/proxy/daemon.js';
import { generateTlsIdentity } from '../../src/x509/selfsigned.js';
import { readAuditRecords } from '../helpers/audit.js';
import { LogSink } from '../helpers/log-sink.js';
import { processScratch, spawnBin, waitFor, type Spawned } from '../helpers/spawn.js';

/**
 * A pin that lapses stops traffic at once. The simulator runs as a process and is switched
 * through its control port under live keep-alive traffic; /readyz, /status, the response headers
 * and what reaches the router (the simulator's own record of request ids per TLS key) are sampled
 * throughout, and compared with the instant the daemon says the pin lapsed.
 */
const scratch = processScratch('tresor-pin-lapse-');
const KEY = `tr-${'7'.repeat(96)}`;
const chat = (stream = false) => JSON.stringify({ model: 'eu/tresor/gpt-oss-120b', stream, messages: [{ role: 'user', content: 'the prompt' }] });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Sim {
  p: Spawned;
  url: string;
  bundleUrl: string;
  control: string;
  out: string;
}
let sim: Sim;
let runs = 0;

async function startSim(...args: string[]): Promise<Sim> {
  const out = join(scratch.dir, `sim-${++runs}`);
  const p = spawnBin('tresor-attest', ['sim', '--port', '0', '--control-port', '0', '--write-dir', out, ...args]);
  scratch.running.push(p);
  await waitFor(p, (o) => o.includes('wrote '), 20_000);
  const o = p.stdout();
  return {
    p,
    url: /listening on (https:\/\/\S+)/.exec(o)?.[1] as string,
    bundleUrl: /trust bundle:\s+(\S+)/.exec(o)?.[1] as string,
    control: /control port:\s+(http:\/\/\S+)/.exec(o)?.[1] as string,
    out,
  };
}

const ctl = {
  async faults(s: Sim, body: unknown) {
    const res = await request(`${s.control}/faults`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    return { status: res.statusCode, text: await res.body.text() };
  },
  async post(s: Sim, path: string) {
    const res = await request(`${s.control}${path}`, { method: 'POST' });
    await res.body.dump();
    return res.statusCode;
  },
  async reached(s: Sim) {
    const res = await request(`${s.control}/requests`);
    return (await res.body.json()) as { by_tls_key: Record<string, number>; h2_by_path: Record<string, number>; recent: { request_id: string; tls_spki_sha256: string }[] };
  },
};

interface Daemon {
  daemon: RunningDaemon;
  origin: string;
  stateDir: string;
  logs: LogSink;
}
const daemons: RunningDaemon[] = [];
afterEach(async () => {
  while (daemons.length) await daemons.pop()?.close(200);
  await ctl.faults(sim, { attestation: [] });
});

async function startServe(s: Sim, attestation: Record<string, unknown>, extra: Record<string, unknown> = {}): Promise<Daemon> {
  const stateDir = join(s.out, `state-${++runs}`);
  const config = resolveConfig(
    {
      log: { level: 'info' },
      state_dir: stateDir,
      upstreams: [
        {
          name: 'tresor',
          url: s.url,
          listen: '127.0.0.1:0',
          ca_file: join(s.out, 'sim-ca.pem'),
          api_key_env: 'LAPSE_TEST_KEY',
          attestation: { mode: 'enforce', release_root_file: join(s.out, 'release-root.pub'), trust_bundle: s.bundleUrl, test_roots_file: join(s.out, 'test-roots.pem'), max_age_seconds: 10, ...attestation },
          ...extra,
        },
      ],
    },
    null,
  );
  const logs = new LogSink();
  const daemon = await startDaemon(config, { logger: createLogger({ ...config.log, destination: logs }), env: { LAPSE_TEST_KEY: KEY }, processMetrics: false });
  daemons.push(daemon);
  const origin = daemon.listeners[0]?.url as string;
  await until(async () => (await readyz(origin)).ready, 10_000);
  return { daemon, origin, stateDir, logs };
}

async function until(cond: () => Promise<boolean>, ms: number) {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await sleep(25);
  }
}
const readyz = async (origin: string) => (await (await request(`${origin}/readyz`)).body.json()) as { ready: boolean; reasons?: string[] };
interface Lapse {
  spkiSha256: string;
  at: string;
  code: string;
}
interface AttStatus {
  ready: boolean;
  identities: { spkiSha256: string }[];
  lapses: Lapse[];
  lastError?: { code: string };
}
const attStatus = async (origin: string) =>
  ((await (await request(`${origin}/status`)).body.json()) as { upstreams: { attestation: AttStatus }[] }).upstreams[0]?.attestation as AttStatus;

interface Reply {
  t0: number;
  status: number;
  attestation: string;
  spki?: string;
  code?: string;
  requestId: string;
}
interface Sample {
  t: number;
  ready: boolean;
  statusReady: boolean;
  pinned: string[];
}
/** What the load saw so far: the replies and the readiness samples. */
interface Run {
  replies: Reply[];
  samples: Sample[];
}

/**
 * Two app clients keep sending chat completions over keep-alive connections while a sampler
 * reads /readyz and /status; `during` runs meanwhile (switches the simulator, waits).
 */
async function underLoad(d: Daemon, during: (run: Run) => Promise<void>): Promise<Run> {
  const agent = new Agent({ keepAliveTimeout: 30_000 });
  const replies: Reply[] = [];
  const samples: Sample[] = [];
  let stop = false;
  const worker = async () => {
    while (!stop) {
      const t0 = Date.now();
      const res = await request(`${d.origin}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: chat(), dispatcher: agent });
      const body = (await res.body.json()) as { error?: { code: string } };
      replies.push({
        t0,
        status: res.statusCode,
        attestation: String(res.headers['x-tresor-attestation']),
        ...(res.headers['x-tresor-tls-spki-sha256'] ? { spki: String(res.headers['x-tresor-tls-spki-sha256']) } : {}),
        ...(body.error ? { code: body.error.code } : {}),
        requestId: String(res.headers['x-request-id']),
      });
    }
  };
  const sampler = async () => {
    while (!stop) {
      const t = Date.now();
      const [r, s] = await Promise.all([readyz(d.origin), attStatus(d.origin)]);
      samples.push({ t, ready: r.ready, statusReady: s.ready, pinned: s.identities.map((i) => i.spkiSha256) });
      await sleep(20);
    }
  };
  const running = [worker(), worker(), sampler()];
  try {
    await during({ replies, samples });
  } finally {
    stop = true;
    await Promise.all(running);
    await agent.close();
  }
  return { replies, samples };
}

/**
 * Wait (under load) until /status reports a lapse of `key`; then keep the load on until at least
 * four replies and four samples began after it (by count, not by time: a busy machine is slow).
 */
async function lapseOf(d: Daemon, key: string, run: Run, ms = 8_000): Promise<Lapse> {
  let lapse: Lapse | undefined;
  await until(async () => {
    lapse = (await attStatus(d.origin)).lapses.find((l) => l.spkiSha256 === key);
    return lapse !== undefined;
  }, ms);
  const t = Date.parse((lapse as Lapse).at);
  await until(async () => run.replies.filter((r) => r.t0 > t).length > 3 && run.samples.filter((x) => x.t > t).length > 3, 15_000);
  return lapse as Lapse;
}

/** Everything sampled after the lapse agrees with it, and no request started after it reached the router over the lapsed key. */
async function expectStopped(run: Run, lapse: Lapse, failing: { code: string } | 'rotated') {
  const t = Date.parse(lapse.at);
  expect(run.replies.filter((r) => r.t0 < t && r.status === 200).length).toBeGreaterThan(0);
  const after = run.replies.filter((r) => r.t0 > t);
  expect(after.length).toBeGreaterThan(3);
  const reached = await ctl.reached(sim);
  const overLapsedKey = new Set(reached.recent.filter((x) => x.tls_spki_sha256 === lapse.spkiSha256).map((x) => x.request_id));
  // What reached the router: not one request that started after the lapse, over the lapsed key.
  expect(after.filter((r) => overLapsedKey.has(r.requestId))).toEqual([]);
  const late = run.samples.filter((s) => s.t > t);
  expect(late.length).toBeGreaterThan(3);
  for (const s of late) expect(s.pinned).not.toContain(lapse.spkiSha256);
  if (failing === 'rotated') {
    // The router proves its new key: traffic flows over it, and the headers name it.
    for (const r of after) expect(r).toMatchObject({ status: 200, attestation: expect.stringMatching(/^verified(;|$)/) });
    for (const r of after) expect(r.spki).not.toBe(lapse.spkiSha256);
    return;
  }
  // The 502 names the failing check, the headers say unverified, readiness and /status say not ready.
  for (const r of after) expect(r).toMatchObject({ status: 502, attestation: expect.stringMatching(/^unverified(;|$)/), code: failing.code });
  for (const s of late) expect(s).toMatchObject({ ready: false, statusReady: false, pinned: [] });
}

beforeAll(async () => {
  sim = await startSim();
}, 30_000);

describe('a pin that lapses stops traffic at once (simulator process, live keep-alive load)', () => {
  test.each([
    ['a failed refresh (the router now runs a release the bundle does not allow)', 'wrongMeasurement', 'ERR_ATTEST_MEASUREMENT_NOT_ALLOWED'],
    ['a new trust bundle that revokes the pinned tag', 'tagNotAllowed', 'ERR_ATTEST_TAG_NOT_ALLOWED'],
    ["the bundle's valid_until passing while the daemon runs", 'bundleEndsSoon', 'ERR_BUNDLE_EXPIRED'],
  ])('%s', async (_what, fault, code) => {
    const d = await startServe(sim, { refresh_ahead_seconds: 9 });
    const key = (await attStatus(d.origin)).identities[0]?.spkiSha256 as string;
    let lapse: Lapse | undefined;
    const run = await underLoad(d, async (load) => {
      await sleep(400);
      expect(await ctl.faults(sim, { attestation: [fault] })).toEqual({ status: 204, text: '' });
      lapse = await lapseOf(d, key, load);
    });
    expect(lapse?.code).toBe(code);
    await expectStopped(run, lapse as Lapse, { code });
  }, 40_000);

  test('a failed refresh over HTTP/2: no stream is opened on the lapsed session, none in flight is cut, later requests get the failing check', async () => {
    const d = await startServe(sim, { refresh_ahead_seconds: 9 }, { pool: { http2: true } });
    const key = (await attStatus(d.origin)).identities[0]?.spkiSha256 as string;
    const h2Before = (await ctl.reached(sim)).h2_by_path['/v1/chat/completions'] ?? 0;
    let lapse: Lapse | undefined;
    let h2AtLapse = 0;
    const run = await underLoad(d, async (load) => {
      await sleep(400);
      expect(await ctl.faults(sim, { attestation: ['wrongMeasurement'] })).toEqual({ status: 204, text: '' });
      lapse = await lapseOf(d, key, load);
      h2AtLapse = (await ctl.reached(sim)).h2_by_path['/v1/chat/completions'] ?? 0;
      await sleep(300);
    });
    // The load before the lapse really went as HTTP/2 streams; after it, not one more stream.
    expect(h2AtLapse).toBeGreaterThan(h2Before);
    expect((await ctl.reached(sim)).h2_by_path['/v1/chat/completions'] ?? 0).toBe(h2AtLapse);
    expect(lapse?.code).toBe('ERR_ATTEST_MEASUREMENT_NOT_ALLOWED');
    // As over HTTP/1.1: every request after the lapse gets the failing check's 502 (none is cut: underLoad throws on a cut answer).
    await expectStopped(run, lapse as Lapse, { code: 'ERR_ATTEST_MEASUREMENT_NOT_ALLOWED' });
  }, 40_000);

  test('pin expiry (no refresh ahead): at expiresAt, and the router meanwhile fails attestation', async () => {
    const d = await startServe(sim, { refresh_ahead_seconds: 0 });
    const key = (await attStatus(d.origin)).identities[0]?.spkiSha256 as string;
    let lapse: Lapse | undefined;
    const run = await underLoad(d, async (load) => {
      await sleep(300);
      await ctl.faults(sim, { attestation: ['wrongMeasurement'] });
      lapse = await lapseOf(d, key, load, 15_000);
    });
    expect(lapse?.code).toBe('ERR_ATTEST_PIN_EXPIRED');
    await expectStopped(run, lapse as Lapse, { code: 'ERR_ATTEST_MEASUREMENT_NOT_ALLOWED' });
  }, 40_000);

  test.each([
    ['HTTP/1.1', { pool: { http2: false } }],
    ['HTTP/2', { pool: { http2: true } }],
  ])('a refresh that finds the router proving another key (%s): the old key is refused, traffic continues over the new one', async (_, extra) => {
    const d = await startServe(sim, { refresh_ahead_seconds: 9 }, extra);
    const key = (await attStatus(d.origin)).identities[0]?.spkiSha256 as string;
    let lapse: Lapse | undefined;
    const run = await underLoad(d, async (load) => {
      await sleep(400);
      expect(await ctl.post(sim, '/rotate-tls-key')).toBe(204);
      lapse = await lapseOf(d, key, load);
    });
    expect(lapse?.code).toBe('ERR_ATTEST_KEY_CHANGED');
    await expectStopped(run, lapse as Lapse, 'rotated');
  }, 40_000);
});

describe('an exchange in flight when its pin lapses', () => {
  let slow: Sim | undefined;
  test.each<[string, boolean | 'streams']>([
    ['HTTP/1.1', false],
    ['HTTP/2', true],
    ['HTTP/2 for streams only (the default)', 'streams'],
  ])('%s: finishes (its request went out while the pin was good) and its audit record says the pin lapsed', async (_proto, http2) => {
    slow ??= await startSim('--deterministic', '--stream-chunks', '40', '--chunk-interval-ms', '100');
    await ctl.faults(slow, { attestation: [] });
    const d = await startServe(slow, { refresh_ahead_seconds: 9 }, { receipts: { deadline_seconds: 1, not_found_grace_seconds: 0 }, pool: { http2 } });
    const key = (await attStatus(d.origin)).identities[0]?.spkiSha256 as string;
    const res = await request(`${d.origin}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: chat(true) });
    expect(res.statusCode).toBe(200);
    const requestId = String(res.headers['x-request-id']);
    let text = '';
    let switched: Promise<unknown> | undefined;
    for await (const chunk of res.body) {
      text += (chunk as Buffer).toString();
      switched ??= ctl.faults(slow, { attestation: ['wrongMeasurement'] });
    }
    await switched;
    expect(text.trimEnd().endsWith('data: [DONE]')).toBe(true);
    const lapse = (await attStatus(d.origin)).lapses.find((l) => l.spkiSha256 === key);
    expect(lapse?.code).toBe('ERR_ATTEST_MEASUREMENT_NOT_ALLOWED');
    // After the lapse, a new request is refused with the failing check, and reaches the router neither as a request nor as a stream.
    const reached = async () => (await ctl.reached(slow as Sim)).recent.filter((r) => r.request_id).length;
    const [before, h2Before] = [await reached(), (await ctl.reached(slow)).h2_by_path['/v1/chat/completions'] ?? 0];
    // (With 'streams', a stream request: the one that would take the lapsed h2 session.)
    const next = await request(`${d.origin}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: chat(http2 === 'streams') });
    expect(next.statusCode).toBe(502);
    expect(await next.body.json()).toMatchObject({ error: { code: 'ERR_ATTEST_MEASUREMENT_NOT_ALLOWED' } });
    expect([await reached(), (await ctl.reached(slow)).h2_by_path['/v1/chat/completions'] ?? 0]).toEqual([before, h2Before]);
    // The stream in flight rode HTTP/2 (with 'streams' too: it asked for a stream).
    if (http2 !== false) expect(h2Before).toBeGreaterThan(0);
    let record: Record<string, unknown> | undefined;
    await until(async () => {
      record = (await readAuditRecords(d.stateDir).catch(() => [])).find((r) => r.request_id === requestId);
      return record !== undefined;
    }, 15_000);
    expect(record?.attestation).toMatchObject({ tls_spki_sha256: key, pin_lapsed_in_flight: { at: lapse?.at, code: 'ERR_ATTEST_MEASUREMENT_NOT_ALLOWED' } });
  }, 60_000);
});

describe('readiness tells the truth within seconds', () => {
  test('a man in the middle appears: /readyz turns 503 at the first refused connection (the old pin is still fresh), and recovers without traffic once a connection verifies again', async () => {
    // A TCP relay in front of the simulator that can switch new connections to a TLS-terminating
    // man in the middle (its certificate trusted through ca_file), and cut the current ones.
    const mitmId = await generateTlsIdentity(['localhost', '127.0.0.1'], { commonName: 'mitm' });
    const simPort = Number(new URL(sim.url).port);
    const caPem = await readFile(join(sim.out, 'sim-ca.pem'), 'utf8');
    const all = new Set<net.Socket>();
    const mitm = tls.createServer({ cert: mitmId.certPem, key: mitmId.keyPem }, (client) => {
      all.add(client);
      const up = tls.connect({ host: '127.0.0.1', port: simPort, ca: caPem, servername: 'localhost' });
      client.pipe(up).pipe(client);
      up.on('error', () => client.destroy());
      client.on('error', () => up.destroy());
    });
    await new Promise<void>((r) => mitm.listen(0, '127.0.0.1', r));
    let target = simPort;
    const open = new Set<net.Socket>();
    const relay = net.createServer((client) => {
      const up = net.connect({ host: '127.0.0.1', port: target });
      open.add(client);
      all.add(up);
      client.on('close', () => open.delete(client));
      client.pipe(up).pipe(client);
      up.on('error', () => client.destroy());
      client.on('error', () => up.destroy());
    });
    await new Promise<void>((r) => relay.listen(0, '127.0.0.1', r));
    const closeServers = () => {
      for (const s of [...open, ...all]) s.destroy();
      return Promise.all([relay, mitm].map((s) => new Promise((r) => s.close(r))));
    };
    try {
      const caFile = join(sim.out, 'sim-and-mitm.pem');
      await writeFile(caFile, caPem + mitmId.certPem);
      // Default pin lifetime (600 s) and refresh ahead (60 s): no refresh happens during this test.
      const d = await startServe({ ...sim, url: `https://127.0.0.1:${(relay.address() as net.AddressInfo).port}` }, { max_age_seconds: 600 }, { ca_file: caFile });
      const ok = await request(`${d.origin}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: chat() });
      expect(ok.statusCode).toBe(200);
      await ok.body.dump();

      target = (mitm.address() as net.AddressInfo).port;
      for (const s of open) s.destroy();
      const refused = await request(`${d.origin}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: chat() });
      expect(refused.statusCode).toBe(502);
      expect(await refused.body.json()).toMatchObject({ error: { code: 'ERR_ATTEST_SPKI_MISMATCH' } });
      expect((await attStatus(d.origin)).identities).toHaveLength(1);
      expect(await readyz(d.origin)).toMatchObject({ ready: false, reasons: [expect.stringContaining('ERR_ATTEST_SPKI_MISMATCH')] });

      // The man in the middle goes away: the daemon's own retry verifies a connection; no app request needed.
      target = simPort;
      await until(async () => (await readyz(d.origin)).ready, 10_000);
      const again = await request(`${d.origin}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: chat() });
      expect(again.statusCode).toBe(200);
      await again.body.dump();
    } finally {
      await closeServers();
    }
  }, 40_000);
});
