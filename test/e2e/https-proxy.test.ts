import net from 'node:net';
import tls from 'node:tls';
import { request } from 'undici';
import { afterEach, describe, expect, test } from 'vitest';
import type { EvidenceKind } from '../../src/sim/mint/router.js';
import { generateTlsIdentity } from '../../src/x509/selfsigned.js';
import { startHarness, type Harness } from '../helpers/harness.js';

const SECRET = 'the secret prompt behind a proxy';
const chat = JSON.stringify({ model: 'eu/tresor/gpt-oss-120b', messages: [{ role: 'user', content: SECRET }] });
const cleanups: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()?.();
});

/** A free port (nothing listens on it until someone takes it). */
async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

interface TestProxy {
  url: string;
  connects: string[];
  /** Plaintext the proxy could read (only a TLS-intercepting proxy reads any). */
  readable: () => string;
  /** Where every tunnel really goes: the simulator's port. */
  target: number;
}

/**
 * An HTTP CONNECT proxy on 127.0.0.1 that sends every tunnel to the simulator. `mitm` makes it
 * terminate TLS itself with its own certificate and relay the plaintext to the simulator over a
 * second TLS connection, as a TLS-intercepting corporate proxy does.
 */
async function startProxy(target: number, mitm?: { certPem: string; keyPem: string }): Promise<TestProxy> {
  const connects: string[] = [];
  let plain = '';
  const proxy: TestProxy = { url: '', connects, readable: () => plain, target };
  const server = net.createServer((client) => {
    client.on('error', () => client.destroy());
    client.once('data', (head: Buffer) => {
      const m = /^CONNECT (\S+):(\d+) HTTP\/1\.1\r\n/.exec(head.toString());
      if (!m) return client.destroy();
      connects.push(`${m[1]}:${m[2]}`);
      if (!mitm) {
        const up = net.connect(proxy.target, '127.0.0.1', () => {
          client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
          client.pipe(up).pipe(client);
        });
        up.on('error', () => client.destroy());
        return;
      }
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      const inner = new tls.TLSSocket(client, { isServer: true, cert: mitm.certPem, key: mitm.keyPem });
      // Such proxies check the server themselves; whether this one does is irrelevant here.
      const up = tls.connect({ host: '127.0.0.1', port: proxy.target, servername: 'localhost', rejectUnauthorized: false });
      inner.on('data', (c: Buffer) => (plain += c.toString('latin1')));
      inner.pipe(up).pipe(inner);
      inner.on('error', () => up.destroy());
      up.on('error', () => inner.destroy());
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(() => {
    server.close();
  });
  proxy.url = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  return proxy;
}

/**
 * The simulator on a port chosen up front (the proxy's target) and the daemon configured for a
 * port nothing listens on: it can reach the router only through the proxy's tunnel.
 */
async function harnessBehind(o: { kind?: EvidenceKind; mitm?: { certPem: string; keyPem: string } } = {}): Promise<{ h: Harness; proxy: TestProxy; port: number }> {
  const [simPort, port] = [await freePort(), await freePort()];
  const proxy = await startProxy(simPort, o.mitm);
  const h = await startHarness({
    ...(o.kind ? { evidenceKind: o.kind } : {}),
    sim: { port: simPort },
    env: { HTTPS_PROXY: proxy.url },
    upstream: { url: `https://localhost:${port}` },
    ...(o.mitm ? { extraCaPem: o.mitm.certPem } : {}),
  });
  cleanups.push(() => h.close());
  return { h, proxy, port };
}

describe('HTTPS_PROXY with attestation enforced', () => {
  test.each(['snp', 'nitro'] as const)('the CONNECT tunnel carries the attestation and the request; the pin is checked end to end (%s)', async (kind) => {
    const { h, proxy, port } = await harnessBehind({ kind });
    const res = await request(`${h.base}/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: chat });
    expect(res.statusCode).toBe(200);
    expect(await res.body.text()).toContain('Simulated answer');
    expect(res.headers['x-tresor-attestation']).toBe('verified; nonce-bound; channel: bound; test roots');
    expect(res.headers['x-tresor-attestation-kind']).toBe(kind);
    expect(res.headers['x-tresor-tls-spki-sha256']).toBe(h.sim.spkiSha256);
    // Every router connection went through the tunnel (nothing listens on the configured port),
    // and so did the trust bundle fetch (the envelope names the simulator's own bundle URL).
    expect(new Set(proxy.connects)).toEqual(new Set([`localhost:${port}`, `127.0.0.1:${h.sim.port}`]));
    expect(h.sim.requestCounts.get('/attestation') ?? 0).toBeGreaterThan(0);
    expect(h.sim.requestCounts.get('/v1/chat/completions')).toBe(1);
    expect(h.logs.records.some((r) => r.event === 'attestation.verified' && r.spkiSha256 === h.sim.spkiSha256)).toBe(true);
    expect(h.logs.records.filter((r) => r.event === 'attestation.failed')).toEqual([]);
  });

  test('a TLS-intercepting proxy (its certificate trusted through ca_file) is refused: 502 naming the check, and it reads none of the request', async () => {
    const id = await generateTlsIdentity(['localhost', '127.0.0.1'], { commonName: 'intercepting-proxy' });
    const { h, proxy } = await harnessBehind({ mitm: id });
    const res = await request(`${h.base}/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: chat });
    expect(res.statusCode).toBe(502);
    expect(await res.body.json()).toMatchObject({ error: { type: 'attestation_error', code: 'ERR_ATTEST_SPKI_MISMATCH' } });
    expect(res.headers['x-tresor-attestation']).not.toMatch(/^verified/);
    // The proxy relayed the genuine envelope (it asked /attestation) but saw no application byte.
    expect(proxy.connects.length).toBeGreaterThan(0);
    expect(proxy.readable()).toContain('GET /attestation');
    expect(proxy.readable()).not.toContain(SECRET);
    expect(proxy.readable()).not.toMatch(/POST |authorization: bearer tr-/i);
    expect(h.sim.requestCounts.get('/v1/chat/completions') ?? 0).toBe(0);
    expect(h.logs.records.some((r) => r.event === 'attestation.failed' && r.code === 'ERR_ATTEST_SPKI_MISMATCH')).toBe(true);
  });
});
