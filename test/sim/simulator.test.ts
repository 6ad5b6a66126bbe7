import { createHash, X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import http2 from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import { createLocalJWKSet, compactVerify, decodeProtectedHeader, jwtVerify, type JSONWebKeySet } from 'jose';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { parseEnvelope } from '../../src/envelope/parse.js';
import { createRouterEvidence } from '../../src/sim/mint/router.js';
import { startSimulator, type RunningSimulator } from '../../src/sim/index.js';
import { SIM_HTTP2_WINDOW_BYTES } from '../../src/sim/server.js';
import { inbandGet } from '../../src/transport/inband.js';
import { spkiSha256 } from '../../src/x509/certificate.js';

const KEY = `tr-${'a'.repeat(96)}`;
const OTHER = `tr-${'b'.repeat(96)}`;
let sim: RunningSimulator;
let agent: Agent;
beforeAll(async () => {
  sim = await startSimulator();
  agent = new Agent({ connect: { ca: sim.caPem } });
});
afterAll(async () => {
  await agent.close();
  await sim.close();
});

const sha256 = (b: Uint8Array | string) => createHash('sha256').update(b).digest('hex');

async function call(path: string, opts: { method?: string; body?: string; key?: string | null; headers?: Record<string, string> } = {}) {
  const res = await request(`${sim.url}${path}`, {
    dispatcher: agent,
    method: (opts.method ?? (opts.body ? 'POST' : 'GET')) as 'GET',
    headers: { 'content-type': 'application/json', ...(opts.key === null ? {} : { authorization: `Bearer ${opts.key ?? KEY}` }), ...opts.headers },
    body: opts.body,
  });
  const bytes = Buffer.from(await res.body.arrayBuffer());
  return { status: res.statusCode, headers: res.headers, bytes, json: () => JSON.parse(bytes.toString()) as Record<string, any> };
}

const chat = (extra: Record<string, unknown> = {}) => JSON.stringify({ model: 'eu/tresor/gpt-oss-120b', messages: [{ role: 'user', content: 'hi' }], ...extra });

async function receipt(id: string, key = KEY) {
  for (let i = 0; i < 100; i++) {
    const r = await call(`/v1/receipts/${id}`, { key });
    if (r.status !== 404) return r;
    await new Promise((res) => setTimeout(res, 10));
  }
  return call(`/v1/receipts/${id}`, { key });
}

async function jwks(): Promise<JSONWebKeySet> {
  return (await call('/.well-known/jwks.json', { key: null })).json() as unknown as JSONWebKeySet;
}

/** The flow-control windows a simulator's HTTP/2 session grants a client: per stream (SETTINGS) and for the connection (WINDOW_UPDATE on stream 0). */
async function h2Windows(s: RunningSimulator): Promise<{ stream: number; connection: number }> {
  const session = http2.connect(s.url, { ca: s.caPem });
  try {
    const [settings] = (await once(session, 'remoteSettings')) as [http2.Settings];
    // A request's answer arrives after any WINDOW_UPDATE the server sent when the session opened.
    const req = session.request({ ':path': '/v1/models' });
    req.resume();
    await once(req, 'end');
    return { stream: settings.initialWindowSize ?? 65_535, connection: session.state.remoteWindowSize ?? 0 };
  } finally {
    session.destroy();
  }
}

describe('the simulator over HTTP/2', () => {
  test('grants a 1 MiB flow-control window per stream and per connection (a router-sized window; 65,535 on request, HTTP/2\'s default)', async () => {
    expect(SIM_HTTP2_WINDOW_BYTES).toBe(1024 * 1024);
    expect(await h2Windows(sim)).toEqual({ stream: SIM_HTTP2_WINDOW_BYTES, connection: SIM_HTTP2_WINDOW_BYTES });
    const small = await startSimulator({ http2WindowBytes: 65_535 });
    try {
      expect(await h2Windows(small)).toEqual({ stream: 65_535, connection: 65_535 });
    } finally {
      await small.close();
    }
  });
});

describe('simulated router', () => {
  test('TLS key rotation is atomic per connection: one accepted before it is attested for the key it was handshaken with', async () => {
    const s = await startSimulator({ evidence: await createRouterEvidence() });
    const tcp = net.connect(s.port, '127.0.0.1');
    try {
      await once(tcp, 'connect');
      // Let the simulator accept it (in this process): its TLS socket now holds the old key.
      await new Promise((r) => setTimeout(r, 100));
      const old = s.spkiSha256;
      await s.rotateTlsKey();
      expect(s.spkiSha256).not.toBe(old);
      const socket = tls.connect({ socket: tcp, ca: s.caPem, servername: 'localhost', ALPNProtocols: ['http/1.1'] });
      await once(socket, 'secureConnect');
      expect(spkiSha256(new X509Certificate(socket.getPeerCertificate(true).raw))).toBe(old);
      const res = await inbandGet(socket, { host: new URL(s.url).host, path: '/attestation', maxBodyBytes: 1 << 20, timeoutMs: 10_000 });
      expect(res.status).toBe(200);
      expect(parseEnvelope(res.body).tlsSpkiSha256).toBe(old);
    } finally {
      tcp.destroy();
      await s.close();
    }
  });

  test('receipts are ES256 JWS over the exact request and response bytes, verifiable with the JWKS', async () => {
    const body = chat();
    const r = await call('/v1/chat/completions', { body });
    expect(r.status).toBe(200);
    const id = r.json().tresor.receipt_id as string;
    const got = await receipt(id);
    expect(got.status).toBe(200);
    const { id: echoed, receipt: jws } = got.json();
    expect(echoed).toBe(id);
    expect(decodeProtectedHeader(jws)).toEqual({ alg: 'ES256', kid: 'router-receipt-1' });
    const { payload } = await jwtVerify(jws, createLocalJWKSet(await jwks()), { algorithms: ['ES256'] });
    expect(payload).toMatchObject({
      jti: id,
      receipt_type: 'message',
      requested_route: 'eu/tresor/gpt-oss-120b',
      routed_model: 'eu/tresor/gpt-oss-120b',
      failover: false,
      request_digest: `sha256:${sha256(body)}`,
      response_digest: `sha256:${sha256(r.bytes)}`,
    });
  });

  test('receipt errors follow the seed: 400 missing_field, 401 unauthorized, 404 not_found (unknown, other customer, opted out), 503 service_unavailable', async () => {
    expect((await call('/v1/receipts/')).json()).toMatchObject({ error: { code: 'missing_field' } });
    expect((await call('/v1/receipts/x', { key: null })).status).toBe(401);
    expect((await call('/v1/receipts/x', { key: null })).json()).toMatchObject({ error: { code: 'unauthorized' } });
    expect((await call('/v1/receipts/7c9e6679-7425-40de-944b-e07fc1f90ae7')).json()).toMatchObject({ error: { code: 'not_found' } });
    const r = await call('/v1/chat/completions', { body: chat() });
    const id = r.json().tresor.receipt_id as string;
    expect((await receipt(id)).status).toBe(200);
    expect((await call(`/v1/receipts/${id}`, { key: OTHER })).status).toBe(404);
    const opted = await call('/v1/chat/completions', { body: chat(), headers: { 'x-tresor-receipt': 'false' } });
    expect(opted.json().tresor.receipt_id).toBeUndefined();
    sim.faults.statusStorm = { pathPrefix: '/v1/receipts', status: 503, count: 1, retryAfterSeconds: 1 };
    const storm = await call(`/v1/receipts/${id}`);
    expect(storm.status).toBe(503);
    expect(storm.headers['retry-after']).toBe('1');
    expect(storm.json()).toMatchObject({ error: { code: 'service_unavailable' } });
    expect((await call(`/v1/receipts/${id}`)).status).toBe(200);
  });

  test('streams carry the receipt id on the finish chunk and end with [DONE]', async () => {
    const r = await call('/v1/chat/completions', { body: chat({ stream: true }) });
    const events = r.bytes.toString().split('\n\n').filter(Boolean);
    expect(events.at(-1)).toBe('data: [DONE]');
    const finish = JSON.parse((events.at(-2) as string).slice(6));
    expect(finish.choices[0].finish_reason).toBe('stop');
    const { payload } = await jwtVerify((await receipt(finish.tresor.receipt_id)).json().receipt, createLocalJWKSet(await jwks()));
    expect(payload.response_digest).toBe(`sha256:${sha256(r.bytes)}`);
  });

  test('failover, X-Tresor-Timeout-Seconds validation, auth', async () => {
    sim.faults.unavailableRoutes = ['eu/tresor/gpt-oss-120b'];
    const f = await call('/v1/chat/completions', { body: chat({ failover: ['global/redpill/gpt-oss-120b'] }) });
    expect(f.json().tresor).toMatchObject({ requested_route: 'eu/tresor/gpt-oss-120b', routed_model: 'global/redpill/gpt-oss-120b', failover: true });
    expect((await call('/v1/chat/completions', { body: chat() })).json()).toMatchObject({ error: { code: 'no_route_available' } });
    sim.faults.unavailableRoutes = [];
    for (const v of ['0', '1.5', 'abc', '-3']) {
      expect((await call('/v1/chat/completions', { body: chat(), headers: { 'x-tresor-timeout-seconds': v } })).json()).toMatchObject({ error: { code: 'invalid_timeout_override' } });
    }
    expect((await call('/v1/chat/completions', { body: chat(), headers: { 'x-tresor-timeout-seconds': '900' } })).status).toBe(200);
    expect((await call('/v1/chat/completions', { body: chat({ failover: ['a', 'b', 'c', 'd', 'e', 'f'] }) })).status).toBe(400);
    expect((await call('/v1/models', { key: 'sk-not-a-tresor-key' })).status).toBe(401);
  });

  test('JWKS rotation keeps old keys; dropped keys and receipt faults are observable', async () => {
    const kid = await sim.rotateReceiptKey();
    expect(kid).toBe('router-receipt-2');
    const set = await jwks();
    expect(set.keys.map((k) => k.kid)).toEqual(['router-receipt-1', 'router-receipt-2']);
    const r = await call('/v1/chat/completions', { body: chat() });
    const jws = (await receipt(r.json().tresor.receipt_id)).json().receipt as string;
    expect(decodeProtectedHeader(jws).kid).toBe('router-receipt-2');
    sim.faults.jwksDropKids = ['router-receipt-1'];
    expect((await jwks()).keys.map((k) => k.kid)).toEqual(['router-receipt-2']);
    sim.faults.jwksDropKids = [];

    sim.faults.receiptWrongKey = true;
    const wrong = (await receipt((await call('/v1/chat/completions', { body: chat() })).json().tresor.receipt_id)).json().receipt as string;
    sim.faults.receiptWrongKey = false;
    await expect(compactVerify(wrong, createLocalJWKSet(await jwks()))).rejects.toThrow();

    sim.faults.receiptDerSignature = true;
    const der = (await receipt((await call('/v1/chat/completions', { body: chat() })).json().tresor.receipt_id)).json().receipt as string;
    sim.faults.receiptDerSignature = false;
    expect(Buffer.from(der.split('.')[2] as string, 'base64url')[0]).toBe(0x30);

    sim.faults.receiptAlg = 'none';
    const none = (await receipt((await call('/v1/chat/completions', { body: chat() })).json().tresor.receipt_id)).json().receipt as string;
    sim.faults.receiptAlg = 'ES256';
    expect(decodeProtectedHeader(none).alg).toBe('none');
  });

  test('a receipt stored late answers 404 first, then 200', async () => {
    sim.faults.receiptDelayMs = 300;
    const id = (await call('/v1/chat/completions', { body: chat() })).json().tresor.receipt_id as string;
    sim.faults.receiptDelayMs = 0;
    expect((await call(`/v1/receipts/${id}`)).status).toBe(404);
    await new Promise((r) => setTimeout(r, 400));
    expect((await call(`/v1/receipts/${id}`)).status).toBe(200);
  });

  test('deterministic mode: fixed sizes and chunk counts', async () => {
    const det = await startSimulator({ deterministic: { jsonBytes: 1024, streamChunks: 50, chunkIntervalMs: 0 }, receipts: false });
    const a = new Agent({ connect: { ca: det.caPem } });
    try {
      const run = async (stream: boolean) =>
        (await (await request(`${det.url}/v1/chat/completions`, { dispatcher: a, method: 'POST', headers: { authorization: `Bearer ${KEY}` }, body: chat({ stream }) })).body.text());
      const j = JSON.parse(await run(false));
      expect(j.choices[0].message.content).toHaveLength(1024);
      expect(j.tresor.receipt_id).toBeDefined();
      const s = await run(true);
      expect(s.split('\n\n').filter((e) => e.startsWith('data: {')).length).toBe(52);
    } finally {
      await a.close();
      await det.close();
    }
  });

  test('GET /attestation is a clear 503 until evidence is configured', async () => {
    const r = await call('/attestation', { key: null });
    expect(r.status).toBe(503);
    expect(r.json()).toMatchObject({ error: { code: 'attestation_unavailable' } });
  });
});
