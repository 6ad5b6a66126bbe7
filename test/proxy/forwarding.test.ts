import http2 from 'node:http2';
import net from 'node:net';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterEach, describe, expect, test } from 'vitest';
import { resolveConfig } from '../../src/config/load.js';
import { createLogger } from '../../src/log/logger.js';
import { startDaemon, type RunningDaemon } from '../../src/proxy/daemon.js';
import { LogSink } from '../helpers/log-sink.js';
import { startTestUpstream, type TestUpstream } from '../helpers/upstream.js';
import { startHarness } from '../helpers/harness.js';
import { generateTlsIdentity } from '../../src/x509/selfsigned.js';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()?.();
});

async function daemonFor(up: { url: string; caPem: string }, upstream: Record<string, unknown> = {}, env: Record<string, string | undefined> = {}) {
  const dir = await mkdtemp(join(tmpdir(), 'tresor-fwd-'));
  await writeFile(join(dir, 'ca.pem'), up.caPem);
  const config = resolveConfig(
    // Plain test upstreams have no evidence: these tests forward with attestation explicitly off.
    { state_dir: join(dir, 'state'), upstreams: [{ url: up.url, listen: '127.0.0.1:0', ca_file: join(dir, 'ca.pem'), api_key_env: 'FWD_KEY', attestation: { mode: 'off' }, ...upstream }] },
    null,
  );
  const logs = new LogSink();
  const daemon: RunningDaemon = await startDaemon(config, { logger: createLogger({ level: 'info', format: 'json', destination: logs }), env: { FWD_KEY: undefined, ...env } });
  cleanups.push(async () => {
    await daemon.close(200);
    await rm(dir, { recursive: true, force: true });
  });
  return { daemon, base: daemon.listeners[0]?.url as string, logs };
}

async function upstream(handler: Parameters<typeof startTestUpstream>[0]): Promise<TestUpstream> {
  const up = await startTestUpstream(handler);
  cleanups.push(() => up.close());
  return up;
}

const echo = () => upstream((_req, res) => {
  res.writeHead(200, { 'content-type': 'application/json', connection: 'close, x-hop', 'x-hop': 'drop-me', 'keep-alive': 'timeout=5', 'x-tresor-upstream': 'kept' });
  res.end('{"ok":true}');
});

describe('forwarding', () => {
  test('every answer carries X-Request-Id: forwarded, failed upstream, refused body, and the daemon\'s own', async () => {
    const up = await echo();
    const { base } = await daemonFor(up, { max_body_bytes: 1000 });
    const origin = new URL(base).origin;
    const idOf = async (url: string, init: { method?: string; headers?: Record<string, string>; body?: string } = {}) => {
      const res = await request(url, { ...init, headers: { 'x-request-id': 'rid-1', ...init.headers } } as Parameters<typeof request>[1]);
      await res.body.text();
      return [res.statusCode, res.headers['x-request-id']];
    };
    expect(await idOf(`${base}/v1/things`, { method: 'POST', body: '{}' })).toEqual([200, 'rid-1']);
    expect(await idOf(`${base}/v1/things`, { method: 'POST', body: 'x'.repeat(2000) })).toEqual([413, 'rid-1']);
    expect(await idOf(`${origin}/healthz`)).toEqual([200, 'rid-1']);
    expect(await idOf(`${origin}/status`)).toEqual([200, 'rid-1']);
    expect(await idOf(`${origin}/elsewhere`)).toEqual([404, 'rid-1']);
    expect(await idOf(`${base}/models`, { headers: { host: 'evil.example' } })).toEqual([421, 'rid-1']);
    await up.close();
    expect(await idOf(`${base}/v1/things`, { method: 'POST', body: '{}' })).toEqual([502, 'rid-1']);
  });

  test('hop-by-hop headers are stripped both ways; X-Tresor-* and the rest pass; the app key passes through when none is configured', async () => {
    const up = await echo();
    const { base } = await daemonFor(up);
    // A raw request: HTTP clients refuse to send some of these fields themselves.
    const raw = await new Promise<string>((resolve, reject) => {
      const { port } = new URL(base);
      const s = net.connect(Number(port), '127.0.0.1', () => {
        s.write(
          'POST /v1/things?a=1&b=2 HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer app-own-key\r\nConnection: close, x-custom-hop\r\n' +
            'X-Custom-Hop: 1\r\nProxy-Authorization: Basic zzz\r\nTE: trailers\r\nX-Tresor-Receipt: false\r\nX-Other: yes\r\n' +
            'X-Request-Id: app-req-1\r\nContent-Length: 7\r\n\r\npayload',
        );
      });
      let out = '';
      s.on('data', (c: Buffer) => (out += c.toString()));
      s.on('end', () => resolve(out));
      s.on('error', reject);
    });
    const [head, body] = raw.split('\r\n\r\n');
    expect(body).toContain('{"ok":true}');
    expect(head).not.toMatch(/x-hop/i);
    expect(head).not.toMatch(/keep-alive: timeout=5/i);
    expect(head).toMatch(/x-tresor-upstream: kept/i);
    expect(head).toMatch(/x-request-id: app-req-1/i);
    const got = up.received[0];
    expect(got?.url).toBe('/v1/things?a=1&b=2');
    expect(got?.method).toBe('POST');
    expect(got?.body.toString()).toBe('payload');
    expect(got?.headers.authorization).toBe('Bearer app-own-key');
    expect(got?.headers['x-tresor-receipt']).toBe('false');
    expect(got?.headers['x-other']).toBe('yes');
    expect(got?.headers['x-request-id']).toBe('app-req-1');
    expect(got?.headers['x-custom-hop']).toBeUndefined();
    expect(got?.headers['proxy-authorization']).toBeUndefined();
    expect(got?.headers.te).toBeUndefined();
  });

  test('a configured key replaces whatever Authorization the app sent, also from a key file', async () => {
    const up = await echo();
    const dir = await mkdtemp(join(tmpdir(), 'tresor-key-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    await writeFile(join(dir, 'key'), 'tr-from-file\n');
    const { base, logs } = await daemonFor(up, { api_key_file: join(dir, 'key') });
    await (await request(`${base}/v1/models`, { headers: { authorization: 'Bearer placeholder' } })).body.dump();
    await (await request(`${base}/v1/models`)).body.dump();
    expect(up.received.map((r) => r.headers.authorization)).toEqual(['Bearer tr-from-file', 'Bearer tr-from-file']);
    expect(logs.text).not.toContain('tr-from-file');
  });

  test('one access line per request, with the request id, the path without its query, status, bytes and time; no header, query or body in it', async () => {
    const up = await echo();
    const { base, logs } = await daemonFor(up);
    const res = await request(`${base}/v1/things?api_key=sk-in-query`, {
      method: 'POST',
      headers: { authorization: 'Bearer app-secret', 'x-request-id': 'acc-1', 'content-type': 'application/json' },
      body: '{"secret":"body-secret"}',
    });
    await res.body.dump();
    const line = logs.records.find((r) => r.msg === 'request' && r.reqId === 'acc-1');
    expect(line).toMatchObject({ service: 'tresor-attest', reqId: 'acc-1', upstream: 'tresor', method: 'POST', path: '/v1/things', status: 200, requestBytes: 24, responseBytes: 11 });
    expect(typeof line?.ms).toBe('number');
    for (const secret of ['sk-in-query', 'app-secret', 'body-secret']) expect(logs.text).not.toContain(secret);
  });

  test('request bodies reach the upstream byte for byte, with a declared length and chunked, and are counted', async () => {
    const up = await echo();
    const { base, logs } = await daemonFor(up);
    const big = Buffer.alloc(3 * 1024 * 1024 + 17);
    for (let i = 0; i < big.length; i++) big[i] = (i * 31) & 0xff;
    const declared = await request(`${base}/v1/audio/transcriptions`, { method: 'POST', headers: { 'x-request-id': 'body-declared', 'content-length': String(big.length) }, body: big });
    await declared.body.dump();
    const chunked = await request(`${base}/v1/audio/transcriptions`, {
      method: 'POST',
      headers: { 'x-request-id': 'body-chunked' },
      body: (async function* () {
        for (let i = 0; i < big.length; i += 100_000) yield big.subarray(i, i + 100_000);
      })() as unknown as string,
    });
    await chunked.body.dump();
    expect([declared.statusCode, chunked.statusCode]).toEqual([200, 200]);
    expect(up.received.map((r) => r.body.equals(big))).toEqual([true, true]);
    expect(up.received[0]?.headers['content-length']).toBe(String(big.length));
    const counted = (id: string) => logs.records.find((r) => r.msg === 'request' && r.reqId === id)?.requestBytes;
    expect([counted('body-declared'), counted('body-chunked')]).toEqual([big.length, big.length]);
  });

  test('413 for a declared or streamed body over the limit, without contacting the upstream', async () => {
    const up = await echo();
    const { base } = await daemonFor(up, { max_body_bytes: 1000 });
    const declared = await request(`${base}/v1/audio/transcriptions`, { method: 'POST', body: Buffer.alloc(2000) });
    expect(declared.statusCode).toBe(413);
    expect(await declared.body.json()).toMatchObject({ error: { code: 'request_too_large', type: 'invalid_request_error' } });
    const streamed = await request(`${base}/v1/audio/transcriptions`, {
      method: 'POST',
      body: (async function* () {
        for (let i = 0; i < 10; i++) yield Buffer.alloc(500);
      })() as unknown as string,
    });
    expect(streamed.statusCode).toBe(413);
    await streamed.body.dump();
    expect(up.received.filter((r) => r.body.length > 1000)).toEqual([]);
  });

  test.each([false, true])('413 for a chunked body that crosses the limit past the small bound: the crossing chunk never reaches the upstream (HTTP/2 %s)', async (h2) => {
    // The upstream (HTTP/2 and HTTP/1.1) counts what arrives as it arrives (the request never completes).
    const id = await generateTlsIdentity(['localhost', '127.0.0.1'], { commonName: 'limit-upstream' });
    let arrived = 0;
    let version = '';
    const server = http2.createSecureServer({ cert: id.certPem, key: id.keyPem, allowHTTP1: true }, (req) => {
      version = req.httpVersion;
      req.on('data', (c: Buffer) => (arrived += c.length));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const sockets = new Set<net.Socket>();
    server.on('connection', (c: net.Socket) => sockets.add(c));
    cleanups.push(() => new Promise<void>((r) => (sockets.forEach((c) => c.destroy()), server.close(() => r()))));
    const limit = 200_000;
    const { base, logs } = await daemonFor({ url: `https://localhost:${(server.address() as net.AddressInfo).port}`, caPem: id.certPem }, { max_body_bytes: limit, pool: { http2: h2 } });
    const chunk = 40_000;
    const res = await request(`${base}/v1/audio/transcriptions`, {
      method: 'POST',
      headers: { 'x-request-id': 'over-limit' },
      body: (async function* () {
        for (let i = 0; i < 8; i++) {
          yield Buffer.alloc(chunk, i);
          // Each chunk reaches the daemon on its own, so the one crossing the limit is its own chunk.
          await new Promise((r) => setTimeout(r, 20));
        }
      })() as unknown as string,
    });
    expect(res.statusCode).toBe(413);
    expect(await res.body.json()).toMatchObject({ error: { code: 'request_too_large', type: 'invalid_request_error' } });
    // Past the 64 KiB read before dispatch, so the body streamed; but not one byte past the limit.
    expect(arrived).toBeGreaterThan(64 * 1024);
    expect(arrived).toBeLessThanOrEqual(limit);
    expect(version).toBe(h2 ? '2.0' : '1.1');
    expect(logs.records.find((r) => r.msg === 'request' && r.reqId === 'over-limit')).toMatchObject({ status: 413, error: 'ERR_REQUEST_TOO_LARGE' });
  });

  test('502 upstream_unreachable when nothing listens', async () => {
    const port = await new Promise<number>((r) => {
      const s = net.createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as net.AddressInfo).port;
        s.close(() => r(p));
      });
    });
    const { base } = await daemonFor({ url: `https://127.0.0.1:${port}`, caPem: '' });
    const res = await request(`${base}/v1/models`);
    expect(res.statusCode).toBe(502);
    expect(await res.body.json()).toMatchObject({ error: { code: 'upstream_unreachable', type: 'upstream_error' } });
    // With a request body (declared length or chunked) the app still gets the 502, not a reset connection.
    const declared = await request(`${base}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"model":"m","messages":[]}' });
    expect(declared.statusCode).toBe(502);
    expect(await declared.body.json()).toMatchObject({ error: { code: 'upstream_unreachable' } });
    const chunked = await request(`${base}/v1/chat/completions`, {
      method: 'POST',
      body: (async function* () {
        yield Buffer.from('{"model":"m",');
        yield Buffer.from('"messages":[]}');
      })() as unknown as string,
    });
    expect(chunked.statusCode).toBe(502);
    await chunked.body.dump();
    const large = await request(`${base}/v1/audio/transcriptions`, { method: 'POST', body: Buffer.alloc(4 * 1024 * 1024) });
    expect(large.statusCode).toBe(502);
    await large.body.dump();
  });

  test('502 upstream_tls_failed for an untrusted certificate', async () => {
    const up = await echo();
    const { base } = await daemonFor({ url: up.url, caPem: '' });
    const res = await request(`${base}/v1/models`);
    expect(res.statusCode).toBe(502);
    expect(await res.body.json()).toMatchObject({ error: { code: 'upstream_tls_failed' } });
  });

  test('504 upstream_timeout past the budget; X-Tresor-Timeout-Seconds extends it (and is forwarded)', async () => {
    // No race with the clock under load: the request without the header is never answered, so only
    // the budget (1 s + 0.1 s grace, on undici's coarse timers) can end it; the extended one is
    // answered 2.5 s after it arrives, well past the default budget and well inside the extended 10 s.
    const up = await upstream((req, res) => {
      if (req.headers['x-tresor-timeout-seconds'] !== undefined) setTimeout(() => res.end('{"late":true}'), 2500);
    });
    const { base } = await daemonFor(up, { timeouts: { request_seconds: 1, max_request_seconds: 600 } });
    const t0 = performance.now();
    const cut = await request(`${base}/v1/chat/completions`, { method: 'POST', body: '{}' });
    expect(cut.statusCode).toBe(504);
    expect(await cut.body.json()).toMatchObject({ error: { code: 'upstream_timeout' } });
    expect(performance.now() - t0).toBeGreaterThanOrEqual(1000);
    // The daemon gave up on the upstream request (not only on the app).
    await expect.poll(() => up.aborted, { timeout: 5000 }).toBe(1);
    const longer = await request(`${base}/v1/chat/completions`, { method: 'POST', body: '{}', headers: { 'x-tresor-timeout-seconds': '10' } });
    expect(longer.statusCode).toBe(200);
    expect(await longer.body.text()).toBe('{"late":true}');
    expect(up.received[1]?.headers['x-tresor-timeout-seconds']).toBe('10');
  });

  test('streams get an idle timeout, not a total one: a slow but steady stream completes, a stalled one ends with an SSE error', async () => {
    // No race with the clock under load: the steady stream's gaps (100 ms) are far inside the idle
    // limit (2 s, on undici's coarse timers: it fires 1.5-2.5 s after the last byte), while it lasts
    // longer than both that limit and the request budget; the stalled one never sends a second
    // chunk, so only the idle limit can end it.
    const up = await upstream(async (req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('data: {"i":0}\n\n');
      if (req.url?.includes('stall')) return;
      for (let i = 1; i < 30; i++) {
        await new Promise((r) => setTimeout(r, 100));
        if (res.destroyed) return;
        res.write(`data: {"i":${i}}\n\n`);
      }
      res.end('data: [DONE]\n\n');
    });
    const { base } = await daemonFor(up, { timeouts: { request_seconds: 1, stream_idle_seconds: 2 } });
    const t0 = performance.now();
    const steady = await request(`${base}/v1/chat/completions?steady`, { method: 'POST', body: '{}' });
    const text = await steady.body.text();
    expect(text.endsWith('data: {"i":29}\n\ndata: [DONE]\n\n')).toBe(true);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(2900);
    expect(up.aborted).toBe(0);
    const t1 = performance.now();
    const stalled = await request(`${base}/v1/chat/completions?stall`, { method: 'POST', body: '{}' });
    const t2 = await stalled.body.text();
    expect(t2.startsWith('data: {"i":0}\n\n')).toBe(true);
    expect(t2).toContain('event: error\ndata: {"error":{"message":"the upstream stream was interrupted"');
    expect(performance.now() - t1).toBeGreaterThanOrEqual(1400);
    // The daemon gave up on the upstream stream (not only on the app).
    await expect.poll(() => up.aborted, { timeout: 5000 }).toBe(1);
  });

  test('a client that disconnects mid-stream aborts the upstream request', async () => {
    const up = await upstream((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('data: {"first":true}\n\n');
      const t = setInterval(() => res.write('data: {}\n\n'), 50);
      res.on('close', () => clearInterval(t));
    });
    const { base } = await daemonFor(up);
    const ac = new AbortController();
    const res = await request(`${base}/v1/chat/completions`, { method: 'POST', body: '{}', signal: ac.signal });
    for await (const _chunk of res.body) {
      ac.abort();
      break;
    }
    const deadline = Date.now() + 3000;
    while (up.aborted === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(up.aborted).toBe(1);
  });

  test('an app that reads slowly holds the upstream back (backpressure), and then gets every byte', async () => {
    const total = 64 * 1024 * 1024;
    const block = Buffer.alloc(64 * 1024, 7);
    let written = 0;
    const up = await upstream(async (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(total) });
      while (written < total && !res.destroyed) {
        written += block.length;
        if (!res.write(block)) await new Promise((r) => res.once('drain', r));
      }
      res.end();
    });
    const { base } = await daemonFor(up);
    const res = await request(`${base}/v1/files/f-1/content`);
    // The app reads nothing for a while: the daemon stops reading the upstream rather than buffer its answer.
    let before = -1;
    for (let i = 0; i < 50 && before !== written; i++) {
      before = written;
      await new Promise((r) => setTimeout(r, 100));
    }
    // (About 10 MB sit in the sockets' buffers on the way.)
    expect(written).toBeLessThan(total / 2);
    let got = 0;
    for await (const c of res.body) got += (c as Buffer).length;
    expect(got).toBe(total);
  });

  test('an upstream reset mid-stream ends the client stream cleanly with an error event', async () => {
    const h = await startHarness({ sim: { faults: { resetStreamAfterChunks: 2 } } });
    cleanups.push(() => h.close());
    const res = await request(`${h.base}/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'eu/tresor/gpt-oss-120b', stream: true, messages: [{ role: 'user', content: 'x'.repeat(200) }] }),
    });
    const text = await res.body.text();
    expect(text.split('\n\n').filter((e) => e.startsWith('data: {')).length).toBe(2);
    expect(text).toContain('"code":"upstream_stream_interrupted"');
    expect(text).not.toContain('[DONE]');
  });

  test('HTTPS_PROXY: the request is tunnelled with CONNECT, NO_PROXY is honoured', async () => {
    const up = await echo();
    const connects: string[] = [];
    const proxy = net.createServer((client) => {
      client.once('data', (head: Buffer) => {
        const m = /^CONNECT (\S+):(\d+) HTTP\/1\.1/.exec(head.toString());
        if (!m) return client.destroy();
        connects.push(`${m[1]}:${m[2]}`);
        const target = net.connect(Number(m[2]), '127.0.0.1', () => {
          client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
          client.pipe(target).pipe(client);
        });
        target.on('error', () => client.destroy());
      });
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise((r) => proxy.close(r)));
    const proxyUrl = `http://127.0.0.1:${(proxy.address() as net.AddressInfo).port}`;
    const { base } = await daemonFor(up, {}, { HTTPS_PROXY: proxyUrl });
    const res = await request(`${base}/v1/models`);
    expect(await res.body.text()).toBe('{"ok":true}');
    expect(connects).toEqual([`localhost:${new URL(up.url).port}`]);
    const bypass = await daemonFor(up, {}, { HTTPS_PROXY: proxyUrl, NO_PROXY: 'localhost' });
    await (await request(`${bypass.base}/v1/models`)).body.dump();
    expect(connects.length).toBe(1);
  });

  test('control endpoints, 404 outside /v1, unknown upstream, request ids', async () => {
    const up = await echo();
    const { base } = await daemonFor(up);
    expect((await (await request(`${base}/healthz`)).body.json())).toEqual({ status: 'ok' });
    expect((await (await request(`${base}/readyz`)).body.json())).toMatchObject({ ready: true });
    const status = (await (await request(`${base}/status`)).body.json()) as { upstreams: { name: string; counters: { requests: number } }[] };
    expect(status.upstreams[0]?.name).toBe('tresor');
    const nf = await request(`${base}/admin`);
    expect(nf.statusCode).toBe(404);
    expect(await nf.body.json()).toMatchObject({ error: { code: 'not_found' } });
    const unknown = await request(`${base}/upstreams/nope/v1/models`);
    expect(unknown.statusCode).toBe(404);
    expect(await unknown.body.json()).toMatchObject({ error: { code: 'unknown_upstream' } });
    const named = await request(`${base}/upstreams/tresor/v1/models`, { headers: { 'x-request-id': 'bad id with spaces' } });
    expect(named.statusCode).toBe(200);
    expect(named.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    await named.body.dump();
  });
});

describe('several upstreams', () => {
  test('each upstream has its own listener (its own OPENAI_BASE_URL) and key; /upstreams/<name>/ reaches the other', async () => {
    const a = await upstream((_req, res) => {
      res.end('{"from":"a"}');
    });
    const b = await upstream((_req, res) => {
      res.end('{"from":"b"}');
    });
    const dir = await mkdtemp(join(tmpdir(), 'tresor-multi-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    await writeFile(join(dir, 'ca.pem'), a.caPem + b.caPem);
    const common = { listen: '127.0.0.1:0', ca_file: join(dir, 'ca.pem'), attestation: { mode: 'off' } };
    const config = resolveConfig(
      {
        state_dir: join(dir, 'state'),
        upstreams: [
          { name: 'alpha', url: a.url, api_key_env: 'KEY_A', ...common },
          { name: 'beta', url: b.url, api_key_env: 'KEY_B', ...common },
        ],
      },
      null,
    );
    const daemon = await startDaemon(config, { logger: createLogger({ level: 'silent', format: 'json' }), env: { KEY_A: 'tr-a', KEY_B: 'tr-b' } });
    cleanups.push(() => daemon.close(200));
    expect(daemon.listeners.map((l) => l.upstream)).toEqual(['alpha', 'beta']);
    const la = daemon.listeners[0]?.url as string;
    const lb = daemon.listeners[1]?.url as string;
    expect(la).not.toBe(lb);
    expect(await (await request(`${la}/v1/models`)).body.text()).toBe('{"from":"a"}');
    expect(await (await request(`${lb}/v1/models`)).body.text()).toBe('{"from":"b"}');
    expect(await (await request(`${la}/upstreams/beta/v1/models`)).body.text()).toBe('{"from":"b"}');
    expect(a.received.map((r) => r.headers.authorization)).toEqual(['Bearer tr-a']);
    expect(b.received.map((r) => r.headers.authorization)).toEqual(['Bearer tr-b', 'Bearer tr-b']);
  });
});

describe('the receipt id echo', () => {
  test('an SSE answer whose id is only in its finish chunk gets it as an X-Tresor-Receipt-Id trailer; the bytes are untouched', async () => {
    const sse =
      'data: {"choices":[{"delta":{"content":"a"},"finish_reason":null}]}\n\n' +
      'data: {"choices":[{"delta":{},"finish_reason":"stop"}],"tresor":{"receipt_id":"abc-123","requested_route":"r","routed_model":"m","failover":false}}\n\n' +
      'data: [DONE]\n\n';
    const up = await upstream((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(sse.slice(0, 50));
      res.end(sse.slice(50));
    });
    const { base } = await daemonFor(up, { receipts: { mode: 'audit', deadline_seconds: 1, not_found_grace_seconds: 0 } }, { FWD_KEY: 'tr-x' });
    const res = await request(`${base}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"stream":true}' });
    expect(res.headers.trailer).toBe('x-tresor-receipt-id');
    expect(await res.body.text()).toBe(sse);
    expect(res.trailers['x-tresor-receipt-id']).toBe('abc-123');
  });
});

describe('the end of an answer waits for the observer (the receipt journal)', () => {
  // An observer whose onEnd takes 400 ms stands for a slow journal fdatasync.
  const slowEnd = { onExchange: () => ({ onEnd: () => new Promise<undefined>((r) => setTimeout(() => r(undefined), 400)) }) };
  const body = JSON.stringify({ model: 'eu/tresor/gpt-oss-120b', messages: [{ role: 'user', content: 'hold my end' }] });

  test('a Content-Length answer: its last bytes arrive only after onEnd; the bytes are untouched', async () => {
    const h = await startHarness({ upstream: { receipts: { mode: 'off' } }, hooks: slowEnd });
    cleanups.push(() => h.close());
    const t0 = Date.now();
    const res = await request(`${h.base}/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    expect(res.headers['content-length']).toBeDefined();
    const text = await res.body.text();
    expect(Date.now() - t0).toBeGreaterThanOrEqual(380);
    expect(Buffer.byteLength(text)).toBe(Number(res.headers['content-length']));
    expect(JSON.parse(text).choices[0].message.content).toContain('hold my end');
  });

  test('a stream: every chunk flows at once except the final data: [DONE], which follows onEnd', async () => {
    const h = await startHarness({ upstream: { receipts: { mode: 'off' } }, hooks: slowEnd });
    cleanups.push(() => h.close());
    const res = await request(`${h.base}/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: body.replace('{', '{"stream":true,') });
    let text = '';
    let finishAt = 0;
    let doneAt = 0;
    for await (const c of res.body) {
      text += Buffer.from(c).toString('utf8');
      if (!finishAt && text.includes('"finish_reason":"stop"')) finishAt = Date.now();
      if (!doneAt && text.includes('data: [DONE]')) doneAt = Date.now();
    }
    expect(finishAt).toBeGreaterThan(0);
    expect(doneAt - finishAt).toBeGreaterThanOrEqual(350);
    expect(text.endsWith('data: [DONE]\n\n')).toBe(true);
  });

  test('the observer is told the request body ended after its last chunk (small and streamed bodies), before the answer ends', async () => {
    const seen: { chunks: Buffer[]; events: string[] }[] = [];
    const recording = {
      onExchange: () => {
        const s = { chunks: [] as Buffer[], events: [] as string[] };
        seen.push(s);
        return {
          onRequestChunk: (c: Uint8Array) => {
            s.chunks.push(Buffer.from(c));
            s.events.push('chunk');
          },
          onRequestEnd: () => void s.events.push('request end'),
          onResponseStart: () => void s.events.push('response'),
          onEnd: () => void s.events.push('end'),
        };
      },
    };
    const h = await startHarness({ upstream: { receipts: { mode: 'off' } }, hooks: recording });
    cleanups.push(() => h.close());
    const large = JSON.stringify({ model: 'eu/tresor/gpt-oss-120b', messages: [{ role: 'user', content: 'x'.repeat(200_000) }] });
    for (const sent of [body, large]) {
      const res = await request(`${h.base}/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: sent });
      expect(res.statusCode).toBe(200);
      await res.body.text();
    }
    expect(seen.map((s) => Buffer.concat(s.chunks).toString())).toEqual([body, large]);
    for (const s of seen) {
      const events = s.events.filter((e, i) => e !== 'chunk' || s.events[i + 1] !== 'chunk');
      expect(events).toEqual(['chunk', 'request end', 'response', 'end']);
    }
    expect(seen[1]?.chunks.length).toBeGreaterThan(1); // the large body streamed, chunk by chunk
  });
});
