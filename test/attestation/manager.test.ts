import https from 'node:https';
import tls, { type TLSSocket } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, test } from 'vitest';
import pino from 'pino';
import { Client } from 'undici';
import { generateTlsIdentity, type GeneratedTlsIdentity } from '../../src/x509/selfsigned.js';
import { inbandGet } from '../../src/transport/inband.js';
import { AttestationManager, type AttestationMode } from '../../src/attestation/manager.js';
import type { AttestedIdentity } from '../../src/attestation/identity.js';
import { VerificationError } from '../../src/errors/index.js';

const silent = pino({ level: 'silent' });
const closers: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (closers.length) await closers.pop()?.();
});

interface Router {
  port: number;
  ca: string[];
  id: GeneratedTlsIdentity;
  bodiesSeen: string[];
  attestationsServed: number;
  rotate(): Promise<void>;
}

/** A TLS server that serves an "envelope" naming its own key (or `claim` if given) and records request bodies. */
let serial = 0;
/** Distinct subjects: OpenSSL looks trust anchors up by subject name. */
const freshIdentity = () => generateTlsIdentity(['localhost', '127.0.0.1'], { commonName: `router-${++serial}` });

async function startRouter(opts: { claim?: () => string } = {}): Promise<Router> {
  let id = await freshIdentity();
  const ca = [id.certPem];
  const r: Router = {
    port: 0,
    ca,
    id,
    bodiesSeen: [],
    attestationsServed: 0,
    async rotate() {
      id = await freshIdentity();
      r.id = id;
      ca.push(id.certPem);
      server.setSecureContext({ cert: id.certPem, key: id.keyPem });
    },
  };
  const server = https.createServer({ cert: id.certPem, key: id.keyPem }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.url?.startsWith('/attestation')) {
        r.attestationsServed++;
        const body = JSON.stringify({ spki: opts.claim ? opts.claim() : r.id.spkiSha256 });
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
        res.end(body);
        return;
      }
      r.bodiesSeen.push(Buffer.concat(chunks).toString());
      res.end('ok');
    });
  });
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
  r.port = (server.address() as AddressInfo).port;
  closers.push(() => new Promise<void>((res) => { server.closeAllConnections(); server.close(() => res()); }));
  return r;
}

function identityFor(spki: string, ttlMs = 60_000): AttestedIdentity {
  const now = Date.now();
  return {
    spkiSha256: spki,
    kind: 'snp',
    measurement: 'ab'.repeat(48),
    tag: 'cd'.repeat(32),
    verifiedAt: new Date(now).toISOString(),
    expiresAt: new Date(now + ttlMs).toISOString(),
    freshness: 'nonce-bound',
    channel: 'bound',
    summary: {},
  };
}

/** The attestation step used in these tests: fetch over the socket, trust what the envelope says. */
async function attestOverSocket({ socket }: { socket: TLSSocket }): Promise<AttestedIdentity> {
  const res = await inbandGet(socket, { host: 'localhost', path: '/attestation', maxBodyBytes: 65536, timeoutMs: 2000 });
  const { spki } = JSON.parse(Buffer.from(res.body).toString()) as { spki: string };
  return identityFor(spki);
}

function pinnedClient(router: Router, manager: AttestationManager): Client {
  const client = new Client(`https://localhost:${router.port}`, {
    connect: (o, cb) => {
      const socket = tls.connect({ host: '127.0.0.1', port: router.port, servername: 'localhost', ca: router.ca });
      socket.once('error', (e) => cb(e, null));
      socket.once('secureConnect', () => {
        manager.verifyConnection(socket).then(
          () => cb(null, socket),
          (e: Error) => {
            socket.destroy();
            cb(e, null);
          },
        );
      });
    },
  });
  closers.push(() => client.destroy());
  return client;
}

function manager(mode: AttestationMode, attest = attestOverSocket) {
  return new AttestationManager({ upstream: 'test', mode, attest, clock: () => new Date(), logger: silent, refreshAheadMs: 5_000 });
}

describe('AttestationManager connection pinning', () => {
  test('attests a new connection in band, then reuses the pin without fetching again', async () => {
    const router = await startRouter();
    const m = manager('enforce');
    const client = pinnedClient(router, m);
    for (let i = 0; i < 3; i++) {
      const res = await client.request({ path: '/v1/x', method: 'POST', body: `secret-${i}` });
      expect(await res.body.text()).toBe('ok');
    }
    expect(router.attestationsServed).toBe(1);
    expect(router.bodiesSeen).toEqual(['secret-0', 'secret-1', 'secret-2']);
    expect(m.readiness()).toEqual({ ready: true });
    expect(m.responseHeaders()['x-tresor-attestation']).toBe('verified; nonce-bound; channel: bound');
    expect(m.responseHeaders()['x-tresor-tls-spki-sha256']).toBe(router.id.spkiSha256);
  });

  test('the response headers are built once per verdict: the same object until the pin lapses or changes', async () => {
    const router = await startRouter();
    let now = Date.now();
    const m = new AttestationManager({ upstream: 'test', mode: 'enforce', attest: attestOverSocket, clock: () => new Date(now), logger: silent, refreshAheadMs: 5_000 });
    closers.push(() => m.stop());
    expect(m.responseHeaders()).toEqual({ 'x-tresor-attestation': 'unverified' });
    const client = pinnedClient(router, m);
    expect(await (await client.request({ path: '/v1/x', method: 'POST', body: 'x' })).body.text()).toBe('ok');
    // A new pin changes the verdict at once (the cached "unverified" is not served).
    const first = m.responseHeaders();
    expect(first['x-tresor-attestation']).toBe('verified; nonce-bound; channel: bound');
    expect(m.responseHeaders()).toBe(first);
    expect(Object.isFrozen(first)).toBe(true);
    // The pin's freshness ends (60 s): the next request's headers say so, without any event.
    now += 61_000;
    expect(m.responseHeaders()).toEqual({ 'x-tresor-attestation': 'unverified' });
    // A clock set back does not serve headers built for a later instant.
    now -= 61_000;
    expect(m.responseHeaders()['x-tresor-attestation']).toBe('verified; nonce-bound; channel: bound');
  });

  test('a man in the middle relaying the genuine key claim is refused and receives no request body', async () => {
    const genuine = await startRouter();
    const mitm = await startRouter({ claim: () => genuine.id.spkiSha256 });
    const m = manager('enforce');
    const client = pinnedClient(mitm, m);
    await expect(client.request({ path: '/v1/x', method: 'POST', body: 'the prompt' })).rejects.toMatchObject({
      code: 'ERR_ATTEST_SPKI_MISMATCH',
    });
    expect(mitm.bodiesSeen).toEqual([]);
    expect(m.readiness().ready).toBe(false);
    expect(m.status()).toMatchObject({ lastError: { code: 'ERR_ATTEST_SPKI_MISMATCH' } });
  });

  test('a rotated TLS key triggers exactly one re-attestation and traffic recovers by itself', async () => {
    const router = await startRouter();
    const m = manager('enforce');
    const client = pinnedClient(router, m);
    await (await client.request({ path: '/v1/a', method: 'POST', body: 'a' })).body.text();
    const firstKey = router.id.spkiSha256;
    await router.rotate();
    await client.close();
    const client2 = pinnedClient(router, m);
    await (await client2.request({ path: '/v1/b', method: 'POST', body: 'b' })).body.text();
    expect(router.attestationsServed).toBe(2);
    expect(router.id.spkiSha256).not.toBe(firstKey);
    expect(m.current()?.spkiSha256).toBe(router.id.spkiSha256);
  });

  test('repeated failures open the circuit: later connections fail fast without fetching', async () => {
    const router = await startRouter();
    let calls = 0;
    const failing = async () => {
      calls++;
      throw new VerificationError('ERR_ATTEST_MEASUREMENT_NOT_ALLOWED', 'expected an allowed MEASUREMENT');
    };
    const m = new AttestationManager({
      upstream: 'test',
      mode: 'enforce',
      attest: failing,
      clock: () => new Date(),
      logger: silent,
      refreshAheadMs: 5_000,
      circuit: { threshold: 2, baseMs: 60_000, maxMs: 60_000 },
    });
    for (let i = 0; i < 4; i++) {
      const client = pinnedClient(router, m);
      await expect(client.request({ path: '/v1/x', method: 'POST', body: 'x' })).rejects.toMatchObject({
        code: 'ERR_ATTEST_MEASUREMENT_NOT_ALLOWED',
      });
    }
    expect(calls).toBe(2);
    expect(router.bodiesSeen).toEqual([]);
    expect(m.status()).toMatchObject({ circuit: { open: true } });
  });

  test('the per-request gate is a lookup: a socket is usable only while its own key has a fresh pin (injected clock)', async () => {
    const router = await startRouter();
    let now = Date.now();
    const m = new AttestationManager({ upstream: 'test', mode: 'enforce', attest: attestOverSocket, clock: () => new Date(now), logger: silent, refreshAheadMs: 5_000 });
    closers.push(() => m.stop());
    const connect = async () => {
      const socket = tls.connect({ host: '127.0.0.1', port: router.port, servername: 'localhost', ca: router.ca });
      closers.push(() => { socket.destroy(); });
      await new Promise((r) => socket.once('secureConnect', r));
      return socket;
    };
    const verified = await connect();
    const unverified = await connect();
    await m.verifyConnection(verified);
    expect(m.usable(verified)).toBe(true);
    expect(m.usable(unverified)).toBe(false);
    now += 61_000;
    expect(m.usable(verified)).toBe(false);
    expect(m.readiness().ready).toBe(false);
    expect(manager('warn').usable(unverified)).toBe(true);
  });

  test('warn mode forwards despite a failure and says so in the headers', async () => {
    const router = await startRouter();
    const m = manager('warn', async () => {
      throw new VerificationError('ERR_ATTEST_TAG_NOT_ALLOWED', 'tag not allowed');
    });
    const client = pinnedClient(router, m);
    const res = await client.request({ path: '/v1/x', method: 'POST', body: 'x' });
    expect(await res.body.text()).toBe('ok');
    expect(m.responseHeaders()['x-tresor-attestation']).toBe('unverified-warn-mode');
    expect(m.readiness().ready).toBe(true);
  });

  test('off mode never fetches attestation', async () => {
    const router = await startRouter();
    const m = manager('off');
    const client = pinnedClient(router, m);
    await (await client.request({ path: '/v1/x', method: 'POST', body: 'x' })).body.text();
    expect(router.attestationsServed).toBe(0);
    expect(m.responseHeaders()).toEqual({ 'x-tresor-attestation': 'off' });
  });
});

describe('inbandGet', () => {
  test('bounds the response size', async () => {
    const router = await startRouter({ claim: () => 'x'.repeat(10_000) });
    const socket = tls.connect({ host: '127.0.0.1', port: router.port, servername: 'localhost', ca: router.ca });
    await new Promise((r) => socket.once('secureConnect', r));
    closers.push(() => { socket.destroy(); });
    await expect(inbandGet(socket, { host: 'localhost', path: '/attestation', maxBodyBytes: 1000, timeoutMs: 2000 })).rejects.toMatchObject({
      code: 'ERR_ATTEST_TOO_LARGE',
    });
  });

  test('times out when the server never answers', async () => {
    const id = await generateTlsIdentity();
    const server = tls.createServer({ cert: id.certPem, key: id.keyPem }, (s) => s.resume());
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    closers.push(() => new Promise<void>((r) => server.close(() => r())));
    const socket = tls.connect({ host: '127.0.0.1', port: (server.address() as AddressInfo).port, servername: 'localhost', ca: id.certPem });
    await new Promise((r) => socket.once('secureConnect', r));
    closers.push(() => { socket.destroy(); });
    await expect(inbandGet(socket, { host: 'localhost', path: '/attestation', maxBodyBytes: 1000, timeoutMs: 200 })).rejects.toMatchObject({
      code: 'ERR_ATTEST_TIMEOUT',
    });
  });
});
