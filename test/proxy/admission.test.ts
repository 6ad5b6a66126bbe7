import type { IncomingMessage } from 'node:http';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { resolveConfig } from '../../src/config/load.js';
import { createLogger } from '../../src/log/logger.js';
import { startDaemon, type RunningDaemon } from '../../src/proxy/daemon.js';
import { hostAllowed, hostName, listenerDoor, normalizeTarget, normalizeTargetFully } from '../../src/proxy/admission.js';
import { LogSink } from '../helpers/log-sink.js';
import { rawRequest } from '../helpers/raw-http.js';
import { startTestUpstream, type TestUpstream } from '../helpers/upstream.js';

const KEY = 'tr-admission-real-key';
const TOKEN = `lt-${'b9'.repeat(20)}`;
const OTHER = `lt-${'0c'.repeat(20)}`;
const APP = 'http://app.example:3000';

interface Setup {
  daemon: RunningDaemon;
  dir: string;
  logs: LogSink;
  ups: TestUpstream[];
  close(): Promise<void>;
}

/**
 * Test upstreams (attestation off) each behind its own listener, all injecting the real key;
 * `extra[i]` is merged into upstream i, and `token: 'a' | 'b'` gives it local token TOKEN or OTHER.
 */
async function start(extra: Record<string, unknown>[]): Promise<Setup> {
  const dir = await mkdtemp(join(tmpdir(), 'tresor-admit-'));
  await writeFile(join(dir, 'a'), TOKEN);
  await writeFile(join(dir, 'b'), OTHER);
  const ups = await Promise.all(
    extra.map(() =>
      startTestUpstream((_req, res) => {
        // A router's own CORS answer is about its origin, not the daemon's: dropped.
        res.writeHead(200, { 'content-type': 'application/json', 'access-control-allow-origin': '*' });
        res.end('{"ok":true}');
      }),
    ),
  );
  await writeFile(join(dir, 'ca.pem'), ups.map((u) => u.caPem).join(''));
  const config = resolveConfig(
    {
      state_dir: join(dir, 'state'),
      upstreams: extra.map(({ token, ...e }, i) => ({
        name: `u${i}`,
        url: ups[i]?.url,
        listen: '127.0.0.1:0',
        ca_file: join(dir, 'ca.pem'),
        api_key_env: 'ADMIT_KEY',
        attestation: { mode: 'off' },
        ...(token ? { local_token_file: join(dir, token as string) } : {}),
        ...e,
      })),
    },
    null,
  );
  const logs = new LogSink();
  const daemon = await startDaemon(config, { logger: createLogger({ level: 'info', format: 'json', destination: logs }), env: { ADMIT_KEY: KEY }, processMetrics: false });
  return {
    daemon,
    dir,
    logs,
    ups,
    async close() {
      await daemon.close(200);
      await Promise.all(ups.map((u) => u.close()));
      await rm(dir, { recursive: true, force: true });
    },
  };
}

const CHAT = '{"model":"eu/tresor/gpt-oss-120b","messages":[{"role":"user","content":"hi"}]}';

describe('path normalisation (RFC 3986 §6.2.2.2 and §5.2.4)', () => {
  test('unreserved characters decoded, dot segments removed, the query untouched', () => {
    expect(normalizeTarget('/v1/chat/completions?a=%2e%2e/x')).toEqual({ path: '/v1/chat/completions', query: '?a=%2e%2e/x', dotSegments: false });
    expect(normalizeTarget('/v1/%6dodels')).toMatchObject({ path: '/v1/models', dotSegments: false });
    expect(normalizeTarget('/v1/./models')).toMatchObject({ path: '/v1/models', dotSegments: true });
    expect(normalizeTarget('/v1/chat/../models')).toMatchObject({ path: '/v1/models', dotSegments: true });
    expect(normalizeTarget('/v1/models/%2e')).toMatchObject({ path: '/v1/models/', dotSegments: true });
    expect(normalizeTarget('/v1/%2e%2E/attestation')).toMatchObject({ path: '/attestation', dotSegments: true });
    expect(normalizeTarget('/v1/files/a%20b')).toMatchObject({ path: '/v1/files/a%20b' });
    expect(normalizeTarget('/v1/files/%c3%a9')).toMatchObject({ path: '/v1/files/%C3%A9' });
    expect(normalizeTarget('/')).toMatchObject({ path: '/' });
  });

  test('an encoded slash inside a segment (a slashed model id, as SDKs send it) stays encoded', () => {
    expect(normalizeTarget('/v1/models/eu%2ftresor%2Fgpt-oss-120b')).toMatchObject({ path: '/v1/models/eu%2Ftresor%2Fgpt-oss-120b', dotSegments: false });
    for (const bad of ['/v1/models%2F..%2Fattestation', '/v1/models/%2F', '/v1/a%2F%2Fb', '/v1/%2E%2E%2Fx', '/v1/x%2F.']) {
      expect(() => normalizeTarget(bad), bad).toThrowError(expect.objectContaining({ code: 'ERR_REQUEST_PATH' }) as Error);
    }
  });

  test('what cannot be normalised unambiguously is refused', () => {
    for (const bad of ['/v1//chat/completions', '//v1/models', '/v1/..%2Fattestation', '/v1/%252e%252e/attestation', '/v1/..;/attestation', '/v1\\..\\attestation', '/v1/%5c..', '/v1/%3fx', '/v1/%zz', '/v1/%4', '/..', '/v1/../../trust/router.json', 'http://evil.example/v1/models', '*', '/v1/models#x']) {
      expect(() => normalizeTarget(bad), bad).toThrowError(expect.objectContaining({ code: 'ERR_REQUEST_PATH' }) as Error);
    }
  });
});

describe("normalizeTarget's shortcut for paths that are already normal", () => {
  /** The result, or the refusal's message. */
  const outcome = (f: (u: string) => unknown, url: string) => {
    try {
      return f(url);
    } catch (e) {
      return `refused: ${(e as Error).message}`;
    }
  };

  test('gives what the full normalisation gives, for every target (random ones from a hostile alphabet included)', () => {
    const fixed = ['/', '/v1', '/v1/', '/v1/chat/completions', '/v1/chat/completions?x=1#y', '/v1/models/a:b@c', "/v1/x!$&'()*+,=~_-.y", '/v1/.', '/v1/..', '/v1/.x', '/v1/..x/', '/v1/x.', '/./v1', '/v1/./', '/v1//', '//', '/v1;x', '/v1/%41', '/v1/a#', '/v1/a?b#c', 'v1', ''];
    const alphabet = ['/', '/', '.', '..', 'v1', 'a', 'Z', '9', '-', '_', '~', '!', ':', '@', '%', '%2e', '%2F', '%41', ';', '\\', '#', '?', ' ', '"', '\u00e9', '[', '{'];
    let seed = 20;
    const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
    const random = Array.from({ length: 5000 }, () => `/${Array.from({ length: 1 + rand(8) }, () => alphabet[rand(alphabet.length)]).join('')}`);
    for (const url of [...fixed, ...random]) expect(outcome(normalizeTarget, url), url).toEqual(outcome(normalizeTargetFully, url));
  });
});

describe('Host names', () => {
  const req = (hosts: string[], localAddress = '127.0.0.1') => ({ rawHeaders: hosts.flatMap((h) => ['Host', h]), socket: { localAddress } }) as unknown as IncomingMessage;
  const door = listenerDoor({ listen: { host: '0.0.0.0', port: 8787 }, allowed_hosts: ['Tresor-Attest', 'sidecar.svc.cluster.local.'], allowed_origins: [] });

  test('the name is taken without its port, brackets or trailing dot', () => {
    expect(hostName('LocalHost:8787')).toBe('localhost');
    expect(hostName('[::1]:80')).toBe('::1');
    expect(hostName('example.com.')).toBe('example.com');
    expect(hostName('a b')).toBeUndefined();
    expect(hostName('x:y')).toBeUndefined();
    expect(hostName('user@evil.example')).toBeUndefined();
  });

  test('loopback names, the address the connection reached and allowed_hosts pass; other names, none or two do not', () => {
    // 0.0.0.0: the listen address as the daemon advertises it (http://0.0.0.0:8787/v1).
    for (const ok of ['localhost:8787', '127.0.0.1', '127.1.2.3:9', '[::1]:8787', 'tresor-attest:8787', 'TRESOR-ATTEST', 'sidecar.svc.cluster.local:1', '0.0.0.0:8787']) expect(hostAllowed(req([ok]), door), ok).toBe(true);
    for (const no of ['evil.example:8787', 'localhost.evil.example', '10.0.0.7:8787', '[::]:8787', '']) expect(hostAllowed(req([no]), door), no).toBe(false);
    expect(hostAllowed(req([]), door)).toBe(false);
    expect(hostAllowed(req(['localhost', 'evil.example']), door)).toBe(false);
    // A pod's own IP (a kubelet probe, a peer in the pod network): the address the connection reached.
    expect(hostAllowed(req(['10.0.0.7:8787'], '::ffff:10.0.0.7'), door)).toBe(true);
    // The same values again (their parse is remembered): the same verdicts, each door its own.
    const other = listenerDoor({ listen: { host: '127.0.0.1', port: 1 }, allowed_hosts: [], allowed_origins: [] });
    for (const v of ['tresor-attest:8787', 'sidecar.svc.cluster.local:1', 'localhost', 'evil.example:8787']) expect([hostAllowed(req([v]), door), hostAllowed(req([v]), other)], v).toEqual([v !== 'evil.example:8787', v === 'localhost']);
    // A specific listen address is a name of the listener even when reached through another route.
    expect(hostAllowed(req(['192.0.2.5:8787']), listenerDoor({ listen: { host: '192.0.2.5', port: 8787 }, allowed_hosts: [], allowed_origins: [] }))).toBe(true);
  });

  test('allowed_hosts and allowed_origins are validated', () => {
    expect(() => resolveConfig({ upstreams: [{ attestation: { mode: 'off' }, allowed_hosts: ['evil.example:80'] }] }, null)).toThrowError(/allowed_hosts\[0\]: must match pattern/);
    expect(() => resolveConfig({ upstreams: [{ attestation: { mode: 'off' }, allowed_origins: ['http://app.example:3000/path'] }] }, null)).toThrowError(/allowed_origins/);
    expect(() => resolveConfig({ upstreams: [{ attestation: { mode: 'off' }, allowed_origins: ['http://app.example:80'] }] }, null)).toThrowError(/allowed_origins: expected an origin/);
    expect(() => resolveConfig({ upstreams: [{ attestation: { mode: 'off' }, allowed_origins: ['*'] }] }, null)).toThrowError(/allowed_origins/);
    expect(resolveConfig({ upstreams: [{ attestation: { mode: 'off' }, allowed_origins: ['https://App.Example'] }] }, null).upstreams[0]?.allowed_origins).toEqual(['https://app.example']);
  });
});

describe('a listener holding the real key, in front of a plain upstream', () => {
  let s: Setup;
  let origin: string;
  beforeAll(async () => {
    s = await start([{ allowed_hosts: ['tresor-attest'], allowed_origins: [APP] }]);
    origin = s.daemon.listeners[0]?.url as string;
  });
  afterAll(async () => {
    await s.close();
  });
  const received = () => s.ups[0]?.received ?? [];

  test('a foreign Host (DNS rebinding) gets 421 everywhere but the probes; nothing is forwarded', async () => {
    const before = received().length;
    const targets: [string, string, string?][] = [
      ['POST', '/v1/chat/completions', CHAT],
      ['GET', '/v1/models'],
      ['GET', '/status'],
      ['GET', '/status/recent'],
      ['GET', '/receipts/abc'],
      ['GET', '/metrics'],
      ['GET', '/'],
      ['POST', '/upstreams/u0/v1/chat/completions', CHAT],
    ];
    for (const [method, target, body] of targets) {
      for (const host of ['evil.example:' + new URL(origin).port, 'rebind.attacker.test', '10.1.2.3']) {
        const r = await rawRequest(origin, { method, target, host, headers: { 'content-type': 'text/plain' }, ...(body ? { body } : {}) });
        expect(r.status, `${method} ${target} Host ${host}`).toBe(421);
        expect(JSON.parse(r.body)).toMatchObject({ error: { type: 'invalid_request_error', code: 'host_not_allowed' } });
      }
    }
    const twice = await rawRequest(origin, { target: '/status', headers: { Host: 'evil.example' } });
    expect(twice.status).toBe(421);
    expect(received().length).toBe(before);
    // Probes answer any Host (a kubelet's httpGet sends the pod IP, a load balancer its own name).
    expect((await rawRequest(origin, { target: '/healthz', host: 'evil.example' })).status).toBe(200);
    expect((await rawRequest(origin, { target: '/readyz', host: '10.1.2.3:8787' })).status).toBe(200);
    const metrics = await (await fetch(`${origin}/metrics`)).text();
    expect(metrics).toMatch(/^tresor_attest_requests_refused_total\{upstream="u0",reason="host"\} 25$/m);
    expect(s.logs.text).toContain('"event":"admission.host"');
  });

  test('loopback names and allowed_hosts (any port) are served', async () => {
    for (const host of [`localhost:${new URL(origin).port}`, 'LOCALHOST', '127.0.0.1', `[::1]:${new URL(origin).port}`, 'tresor-attest:8787']) {
      expect((await rawRequest(origin, { target: '/status', host })).status, host).toBe(200);
    }
    const r = await rawRequest(origin, { method: 'POST', target: '/v1/chat/completions', host: 'tresor-attest:8787', headers: { 'content-type': 'application/json' }, body: CHAT });
    expect(r.status).toBe(200);
    expect(received().at(-1)?.headers.authorization).toBe(`Bearer ${KEY}`);
  });

  test('a foreign browser Origin gets 403 (cross-site fetch, form POST, Origin: null, Sec-Fetch-Site without Origin); nothing is forwarded', async () => {
    const before = received().length;
    const attempts: Record<string, string>[] = [
      { Origin: 'http://evil.example', 'Content-Type': 'text/plain' },
      { Origin: 'null', 'Content-Type': 'application/x-www-form-urlencoded' },
      { Origin: 'http://app.example:3001', 'Content-Type': 'text/plain' },
      { Origin: `http://localhost:${Number(new URL(origin).port) + 1}`, 'Content-Type': 'text/plain' },
      { 'Sec-Fetch-Site': 'cross-site', 'Sec-Fetch-Mode': 'no-cors', 'Content-Type': 'text/plain' },
      { 'Sec-Fetch-Site': 'same-site', 'Sec-Fetch-Mode': 'cors', 'Content-Type': 'text/plain' },
    ];
    for (const headers of attempts) {
      for (const target of ['/v1/chat/completions', '/status']) {
        const r = await rawRequest(origin, { method: target === '/status' ? 'GET' : 'POST', target, headers, ...(target === '/status' ? {} : { body: CHAT }) });
        expect(r.status, `${target} ${JSON.stringify(headers)}`).toBe(403);
        expect(JSON.parse(r.body)).toMatchObject({ error: { type: 'invalid_request_error', code: 'origin_not_allowed' } });
        expect(r.headers['access-control-allow-origin']).toBeUndefined();
      }
    }
    // A preflight from a foreign origin is refused too, and never forwarded.
    const pre = await rawRequest(origin, { method: 'OPTIONS', target: '/v1/chat/completions', headers: { Origin: 'http://evil.example', 'Access-Control-Request-Method': 'POST' } });
    expect(pre.status).toBe(403);
    expect(received().length).toBe(before);
  });

  test('the daemon own origin (its status page), a plain navigation to its pages, and requests without Origin pass', async () => {
    const same = await rawRequest(origin, { method: 'POST', target: '/v1/chat/completions', headers: { Origin: origin, 'Content-Type': 'application/json', 'Sec-Fetch-Site': 'same-origin' }, body: CHAT });
    expect(same.status).toBe(200);
    expect(same.headers['access-control-allow-origin']).toBeUndefined();
    const nav = await rawRequest(origin, { target: '/', headers: { 'Sec-Fetch-Site': 'cross-site', 'Sec-Fetch-Mode': 'navigate' } });
    expect(nav.status).toBe(200);
    // ... but a navigation into /v1 from another site is not.
    expect((await rawRequest(origin, { target: '/v1/models', headers: { 'Sec-Fetch-Site': 'cross-site', 'Sec-Fetch-Mode': 'navigate' } })).status).toBe(403);
    expect((await rawRequest(origin, { target: '/v1/models', headers: { 'Sec-Fetch-Site': 'none', 'Sec-Fetch-Mode': 'navigate' } })).status).toBe(200);
  });

  test('an allowed origin gets CORS: a preflight answered by the daemon, then the call with Access-Control-Allow-Origin', async () => {
    const before = received().length;
    const pre = await rawRequest(origin, {
      method: 'OPTIONS',
      target: '/v1/chat/completions',
      headers: { Origin: APP, 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'authorization, content-type, x-tresor-receipt', 'Access-Control-Request-Private-Network': 'true' },
    });
    expect(pre.status).toBe(204);
    expect(pre.headers).toMatchObject({
      'access-control-allow-origin': APP,
      'access-control-allow-methods': 'GET, HEAD, POST, DELETE',
      'access-control-allow-headers': 'authorization, content-type, x-tresor-receipt',
      'access-control-allow-private-network': 'true',
      vary: 'Origin',
    });
    expect(received().length).toBe(before);
    const r = await fetch(`${origin}/v1/chat/completions`, { method: 'POST', headers: { origin: APP, 'content-type': 'application/json' }, body: CHAT });
    expect(r.status).toBe(200);
    expect(r.headers.get('access-control-allow-origin')).toBe(APP);
    expect(r.headers.get('access-control-expose-headers')).toBe('*');
    expect(received().length).toBe(before + 1);
    // Errors carry the CORS headers too, so the app can read them.
    const nf = await fetch(`${origin}/nope`, { headers: { origin: APP } });
    expect(nf.status).toBe(404);
    expect(nf.headers.get('access-control-allow-origin')).toBe(APP);
  });

  test('dot segments, encoded slashes and empty segments: 400 and never forwarded; paths that stay in /v1 go normalised', async () => {
    const before = received().length;
    for (const target of ['/v1/../attestation', '/v1/%2e%2e/attestation', '/v1/%2E%2E/%2e%2e/trust/router.json', '/v1/../../trust/router.json', '/v1//chat/completions', '/v1/models%2F..%2F..%2Fattestation', '/v1/..;/attestation', '/v1/%252e%252e/attestation', '/upstreams/u0/v1/../../attestation', '/v1/..', '/status/../attestation']) {
      const r = await rawRequest(origin, { method: 'POST', target, headers: { 'content-type': 'application/json' }, body: CHAT });
      expect(r.status, target).toBe(400);
      expect(JSON.parse(r.body), target).toMatchObject({ error: { type: 'invalid_request_error', code: 'invalid_path' } });
    }
    expect(received().length).toBe(before);
    for (const target of ['/v1/./models', '/v1/chat/../models', '/v1/%6Dodels?x=%2e%2e', '/upstreams/u0/v1/x/../models']) {
      expect((await rawRequest(origin, { target })).status, target).toBe(200);
    }
    expect(received().slice(before).map((r) => r.url)).toEqual(['/v1/models', '/v1/models', '/v1/models?x=%2e%2e', '/v1/models']);
    expect(await (await fetch(`${origin}/metrics`)).text()).toMatch(/^tresor_attest_requests_refused_total\{upstream="u0",reason="path"\} 11$/m);
  });
});

describe('every listener keeps its own door', () => {
  let s: Setup;
  let url: string[];
  beforeAll(async () => {
    // u0: loopback, no token; u1: token TOKEN; u2: token OTHER.
    s = await start([{}, { token: 'a' }, { token: 'b' }]);
    url = s.daemon.listeners.map((l) => l.url);
  });
  afterAll(async () => {
    await s.close();
  });
  const get = (base: string | undefined, path: string, headers: Record<string, string> = {}) => fetch(`${base}${path}`, { headers }).then((r) => r.status);

  test('/upstreams/<name>/ needs the token of the upstream it reaches, as well as the token of the listener it arrives on', async () => {
    expect(s.daemon.listeners.map((l) => l.upstream)).toEqual(['u0', 'u1', 'u2']);
    // Through the open listener, u1 still needs u1's token (as its OpenAI key or in X-Tresor-Local-Token).
    expect(await get(url[0], '/upstreams/u1/v1/models')).toBe(401);
    expect(await get(url[0], '/upstreams/u1/v1/models', { authorization: `Bearer ${OTHER}` })).toBe(401);
    expect(s.ups[1]?.received).toHaveLength(0);
    expect(await get(url[0], '/upstreams/u1/v1/models', { authorization: `Bearer ${TOKEN}` })).toBe(200);
    expect(await get(url[0], '/upstreams/u1/v1/models', { 'x-tresor-local-token': TOKEN })).toBe(200);
    expect(s.ups[1]?.received.map((r) => r.headers.authorization)).toEqual([`Bearer ${KEY}`, `Bearer ${KEY}`]);
    // Through u1's listener, the open u0 still needs u1's own token: the listener's door.
    expect(await get(url[1], '/upstreams/u0/v1/models')).toBe(401);
    expect(await get(url[1], '/upstreams/u0/v1/models', { authorization: `Bearer ${TOKEN}` })).toBe(200);
    // Two doors with two tokens: both must be presented.
    expect(await get(url[1], '/upstreams/u2/v1/models', { authorization: `Bearer ${TOKEN}` })).toBe(401);
    expect(await get(url[1], '/upstreams/u2/v1/models', { authorization: `Bearer ${OTHER}` })).toBe(401);
    expect(s.ups[2]?.received).toHaveLength(0);
    expect(await get(url[1], '/upstreams/u2/v1/models', { authorization: `Bearer ${TOKEN}`, 'x-tresor-local-token': OTHER })).toBe(200);
    expect(s.ups[2]?.received).toHaveLength(1);
    // A dot segment cannot walk from one upstream's prefix to another's past its door.
    expect((await rawRequest(url[0] as string, { target: '/upstreams/u0/../u1/v1/models' })).status).toBe(401);
    expect(s.ups[1]?.received).toHaveLength(2);
    const metrics = await (await fetch(`${url[0]}/metrics`)).text();
    expect(metrics).toMatch(/^tresor_attest_local_auth_failures_total\{upstream="u0"\} 3$/m);
  });
});
