import type { IncomingMessage, ServerResponse } from 'node:http';
import { X509Certificate } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { spkiSha256 } from '../x509/certificate.js';
import { generateTestCa, generateTlsIdentity, type GeneratedTlsIdentity } from '../x509/selfsigned.js';
import { handleChat } from './chat.js';
import type { DeterministicMode, SimContext } from './context.js';
import { defaultFaults, takeStorm, type FaultState } from './faults.js';
import { sendJson, sendJsonError } from './http.js';
import { ReceiptService, sha256Hex } from './receipts.js';
import { CHAT_ROUTES, TRANSCRIPTION_ROUTES } from './routes.js';
import { handleTranscription } from './transcriptions.js';
import { createSimServer, goAwayBefore } from './server.js';
import type { RouterEvidence } from './mint/router.js';
import type { AciDeployment } from './mint/aci.js';
import type { NearDeployment } from './mint/near.js';
import type { PinaivuDeployment } from './mint/pinaivu.js';
import { OldestFirst } from '../util/oldest-first.js';

export type { FaultState } from './faults.js';
export type { DeterministicMode } from './context.js';

/** Plugs the attestation issue's evidence into `GET /attestation`. */
export interface SimAttestationProvider {
  envelope(ctx: { nonce?: string; spkiSha256: string }): Promise<object>;
  /** Extra GET routes (e.g. the trust bundle), path → body + content type. */
  routes?: Record<string, () => Promise<{ contentType: string; body: string }>>;
}

export interface SimOptions {
  host?: string;
  port?: number;
  /** Accept these bearer keys; default: any key that starts with `tr-`. */
  apiKeys?: readonly string[];
  faults?: Partial<FaultState>;
  deterministic?: DeterministicMode;
  /** Issue receipts (default true). */
  receipts?: boolean;
  attestation?: SimAttestationProvider;
  /**
   * Serve real SNP evidence from the simulator's own test roots: `GET /attestation` (bound to the
   * live TLS key) and the signed trust bundle at `GET /trust/router.json`.
   */
  evidence?: RouterEvidence;
  /**
   * Speak aci/1 instead of Tresor's protocol: `GET /v1/aci/attestation?nonce=` with SEV-SNP
   * evidence from this deployment's test PKI, `X-Receipt-Id` on chat answers, signed
   * event-log receipts at `GET /v1/aci/receipts/{id}` (and the legacy `/v1/attestation/report`).
   */
  aci?: AciDeployment;
  /**
   * Speak Pinaivu's API instead: the coordinator's Nitro attestation at `GET /get_attestation`
   * (from this deployment's Nitro test PKI), chat answers naming their `request_id` (a UUID), the
   * documented receipt at `GET /v1/receipts/{request_id}` and the coordinator's signed routing
   * proof at `GET /v1/proofs/{uuid}`.
   */
  pinaivu?: PinaivuDeployment;
  /**
   * Speak NEAR AI Cloud's API instead: `GET /v1/attestation/report?nonce=` (a gateway and a model
   * node, dstack TDX quotes from this deployment's Intel-like test PKI), chat answers whose `id` is
   * the chat id, and EIP-191 signatures over both bodies' SHA-256 at `GET /v1/signature/{chat id}`.
   */
  near?: NearDeployment;
  /** Refuse HTTP/2 (ALPN offers only http/1.1); by default both are offered and the client picks. */
  http1Only?: boolean;
  /** HTTP/2 receive window per stream and per connection (default SIM_HTTP2_WINDOW_BYTES, 1 MiB; 65,535 is Node's default). */
  http2WindowBytes?: number;
  /** Extra claims for each receipt (router_attestation, inference_attestation, ...). */
  receiptClaims?: (ctx: { receiptId: string }) => Record<string, unknown> | Promise<Record<string, unknown>>;
}

export interface RunningSimulator {
  url: string;
  port: number;
  /**
   * PEM of the simulator's CA, stable for the simulator's lifetime: what `ca_file` should point
   * at. The TLS certificate is issued by it, so a rotated TLS key stays trusted.
   */
  caPem: string;
  spkiSha256: string;
  fingerprint: string;
  faults: FaultState;
  receipts: ReceiptService;
  /** SHA-256 of the last Authorization header value seen per path group (never the value itself). */
  lastAuthorizationSha256: Map<string, string>;
  /** Count of requests per path group. */
  requestCounts: Map<string, number>;
  /** Count of application requests (`/v1/...`) per TLS key (SPKI SHA-256) of the connection they came over. */
  requestsByTlsKey: Map<string, number>;
  /** The last 1000 application requests: their `X-Request-Id` and the TLS key they came over (what reached the router). */
  recentRequests: { request_id: string; tls_spki_sha256: string; path: string }[];
  /** Of those, the ones that arrived as HTTP/2 streams, per path group. */
  h2RequestCounts: Map<string, number>;
  /** TLS connections accepted so far. */
  connections(): number;
  /** HTTP/2 requests refused unprocessed with a GOAWAY (`faults.goawayNextStream`). */
  goaways(): number;
  /**
   * A new TLS key and certificate from the same CA (a router rotating its key; idle connections
   * on the old key are closed); with `foreignCa`, issued by a throwaway CA that `caPem` clients
   * do not trust.
   */
  rotateTlsKey(opts?: { foreignCa?: boolean }): Promise<void>;
  rotateReceiptKey(): Promise<string>;
  close(): Promise<void>;
}

/** A local HTTPS stand-in for the router (api.tresor.co), for the demo, tests and benchmarks. */
export async function startSimulator(opts: SimOptions = {}): Promise<RunningSimulator> {
  const host = opts.host ?? '127.0.0.1';
  const hosts = ['localhost', '127.0.0.1', '::1', ...(host !== '127.0.0.1' && host !== '0.0.0.0' ? [host] : [])];
  const ca = await generateTestCa({ commonName: 'tresor-sim CA' });
  let identity: GeneratedTlsIdentity = await generateTlsIdentity(hosts, { commonName: 'tresor-sim', issuer: ca });
  const faults: FaultState = { ...defaultFaults(), ...opts.faults };
  const evidence = opts.evidence;
  const attestation: SimAttestationProvider | undefined =
    opts.attestation ??
    (evidence
      ? {
          envelope: (ctx) => evidence.envelope(ctx),
          routes: { '/trust/router.json': async () => ({ contentType: 'application/jose', body: evidence.bundle() }) },
        }
      : undefined);
  const receipts = await ReceiptService.create();
  let routerBlock: { spki: string; at: number; envelope: object } | undefined;
  const aci = opts.aci;
  const aciReceipts = new Map<string, { owner: string; doc: object }>();
  const pinaivu = opts.pinaivu;
  const pinaivuDocs = new Map<string, { owner: string; receipt: object; proof: object | undefined }>();
  const near = opts.near;
  const nearSignatures = new Map<string, { owner: string; signature: object }>();
  // Bounded stores, oldest first (util/oldest-first.ts: no re-walk of a full Map's dead slots per insert).
  const evict = { aciReceipts: new OldestFirst(aciReceipts), nearSignatures: new OldestFirst(nearSignatures), pinaivuDocs: new OldestFirst(pinaivuDocs) };
  const lastAuth = new Map<string, string>();
  const counts = new Map<string, number>();
  const byKey = new Map<string, number>();
  const recent: RunningSimulator['recentRequests'] = [];
  const h2Counts = new Map<string, number>();
  let goaways = 0;
  let port = 0;

  const ctx: SimContext = {
    faults,
    receipts,
    receiptsEnabled: opts.receipts !== false,
    aci: aci !== undefined,
    pinaivu: pinaivu !== undefined,
    near: near !== undefined,
    deterministic: opts.deterministic,
    async issueReceipt(id, owner, requestFaults, claims) {
      if (aci) {
        const doc = aci.receipt({
          spkiSha256: identity.spkiSha256,
          receiptId: id,
          chatId: String(claims.chat_id),
          model: String(claims.routed_model),
          requestDigest: String(claims.request_digest),
          responseDigest: String(claims.response_digest),
        });
        aciReceipts.set(id, { owner, doc });
        evict.aciReceipts.trim(10_000);
        return;
      }
      if (near) {
        const signature = near.signature({ requestSha256: String(claims.request_digest).replace(/^sha256:/, ''), responseSha256: String(claims.response_digest).replace(/^sha256:/, '') });
        nearSignatures.set(id, { owner, signature });
        evict.nearSignatures.trim(10_000);
        return;
      }
      if (pinaivu) {
        const x = { requestId: id, model: String(claims.routed_model), responseSha256: String(claims.response_digest).replace(/^sha256:/, '') };
        pinaivuDocs.set(id, { owner, receipt: pinaivu.receipt(x), proof: pinaivu.proof(x) });
        evict.pinaivuDocs.trim(10_000);
        return;
      }
      // The router's evidence at issuance (docs §3.1: receipts carry the router TEE hop).
      // Like a router, it refreshes that envelope now and then, not per receipt.
      const now = Date.now();
      if (attestation && (!routerBlock || routerBlock.spki !== identity.spkiSha256 || now - routerBlock.at > 60_000)) {
        routerBlock = { spki: identity.spkiSha256, at: now, envelope: await attestation.envelope({ spkiSha256: identity.spkiSha256 }) };
      }
      const router = routerBlock ? { router_attestation: routerBlock.envelope } : {};
      const extra = opts.receiptClaims ? await opts.receiptClaims({ receiptId: id }) : {};
      await receipts.issue(
        id,
        {
          jti: id,
          iat: Math.floor(Date.now() / 1000),
          receipt_type: 'message',
          ...claims,
          receipt_signature: { kid: receipts.activeKid, alg: 'ES256', jwks_url: `https://localhost:${port}/.well-known/jwks.json` },
          ...router,
          ...extra,
        },
        owner,
        requestFaults,
      );
    },
  };

  const keyOk = (auth: string | undefined): string | undefined => {
    const m = /^Bearer (.+)$/.exec(auth ?? '');
    if (!m) return undefined;
    const key = m[1] as string;
    const ok = opts.apiKeys ? opts.apiKeys.includes(key) : key.startsWith('tr-');
    return ok ? sha256Hex(key) : undefined;
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    // Refused unprocessed: it never reached the router, so it is not counted.
    if (faults.goawayNextStream && goAwayBefore(res)) {
      faults.goawayNextStream = false;
      goaways++;
      return;
    }
    const group = path.startsWith('/v1/receipts') ? '/v1/receipts' : path;
    counts.set(group, (counts.get(group) ?? 0) + 1);
    if (path.startsWith('/v1/')) {
      const key = tlsKeyOf(req.socket);
      byKey.set(key, (byKey.get(key) ?? 0) + 1);
      recent.push({ request_id: String(req.headers['x-request-id'] ?? ''), tls_spki_sha256: key, path });
      if (recent.length > 1000) recent.shift();
    }
    if (req.httpVersionMajor === 2) h2Counts.set(group, (h2Counts.get(group) ?? 0) + 1);
    const storm = takeStorm(faults, path);
    if (storm) {
      req.resume();
      return sendJsonError(res, storm.status, storm.status === 429 ? 'rate_limited' : 'service_unavailable', 'simulated failure', undefined,
        storm.retryAfterSeconds !== undefined ? { 'retry-after': String(storm.retryAfterSeconds) } : {});
    }
    if (req.method === 'GET' && path === '/.well-known/jwks.json') return sendJson(res, 200, receipts.jwks(faults), { 'cache-control': 'max-age=300' });
    if (req.method === 'GET' && path === '/attestation') {
      if (!attestation) {
        return sendJsonError(res, 503, 'attestation_unavailable', 'attestation not configured in this simulator', 'service_unavailable');
      }
      const nonce = new URL(req.url ?? '/', 'https://x').searchParams.get('nonce') ?? undefined;
      // Bound to the key this connection was handshaken with, as a router process binds its own
      // key: never a key the simulator rotated to after this connection's handshake began.
      return sendJson(res, 200, await attestation.envelope({ spkiSha256: tlsKeyOf(req.socket), ...(nonce ? { nonce } : {}) }));
    }
    if (aci && req.method === 'GET' && (path === '/v1/aci/attestation' || path === '/v1/attestation/report')) {
      const nonce = new URL(req.url ?? '/', 'https://x').searchParams.get('nonce');
      if (nonce !== null && !/^[0-9a-f]{64}$/.test(nonce)) return sendJsonError(res, 400, 'invalid_request_error', 'nonce must be 64 lowercase hex');
      const report = aci.attestation(tlsKeyOf(req.socket), nonce);
      // The legacy report carries its old fields (and binds identity ‖ nonce, not the statement).
      return sendJson(res, 200, path === '/v1/aci/attestation' ? report : { ...report, signing_address: `0x${'11'.repeat(20)}` });
    }
    if (near && req.method === 'GET' && path === '/v1/attestation/report') {
      // Public, like NEAR's: verifiers fetch it before they send a key.
      const nonce = new URL(req.url ?? '/', 'https://x').searchParams.get('nonce');
      if (nonce !== null && !/^[0-9a-f]{64}$/.test(nonce)) return sendJsonError(res, 400, 'invalid_request_error', 'nonce must be 64 lowercase hex');
      return sendJson(res, 200, near.report(tlsKeyOf(req.socket), nonce, new URL(req.url ?? '/', 'https://x').searchParams.get('model')));
    }
    if (pinaivu && req.method === 'GET' && path === '/get_attestation') {
      // The coordinator takes no nonce; the simulator honours one only with `echoNonce`.
      const nonce = new URL(req.url ?? '/', 'https://x').searchParams.get('nonce');
      return sendJson(res, 200, await pinaivu.attestation(nonce !== null && /^[0-9a-f]{64}$/.test(nonce) ? nonce : null));
    }
    if (pinaivu && req.method === 'GET' && path.startsWith('/v1/proofs/')) {
      // Public, like the coordinator's endpoint the explorer proxies: no key needed.
      const proof = pinaivuDocs.get(decodeURIComponent(path.slice('/v1/proofs/'.length)))?.proof;
      if (!proof) return sendJsonError(res, 404, 'not_found', 'proof not found');
      return sendJson(res, 200, proof);
    }
    const extra = req.method === 'GET' ? attestation?.routes?.[path] : undefined;
    if (extra) {
      const r = await extra();
      res.writeHead(200, { 'content-type': r.contentType, 'content-length': Buffer.byteLength(r.body) });
      return res.end(r.body);
    }
    if (!path.startsWith('/v1/')) {
      req.resume();
      return sendJsonError(res, 404, 'not_found', `no route ${path}`);
    }
    for (const [k, v] of Object.entries(faults.forgedResponseHeaders ?? {})) res.setHeader(k, v);
    lastAuth.set(group, sha256Hex(req.headers.authorization ?? ''));
    const owner = keyOk(req.headers.authorization);
    if (!owner) {
      req.resume();
      return sendJsonError(res, 401, 'unauthorized', 'missing or invalid API key');
    }
    if (req.method === 'POST' && path === '/v1/chat/completions') return handleChat(req, res, ctx, owner);
    if (req.method === 'POST' && path === '/v1/audio/transcriptions') return handleTranscription(req, res, ctx, owner);
    const models = [...CHAT_ROUTES, ...TRANSCRIPTION_ROUTES].map((id) => ({ id, object: 'model', created: 1_750_000_000, owned_by: id.split('/')[1] }));
    if (req.method === 'GET' && path === '/v1/models') return sendJson(res, 200, { object: 'list', data: models });
    if (req.method === 'GET' && path.startsWith('/v1/models/')) {
      // SDKs send a slashed model id percent-encoded: /v1/models/eu%2Ftresor%2Fgpt-oss-120b.
      const model = models.find((m) => m.id === decodeURIComponent(path.slice('/v1/models/'.length)));
      return model ? sendJson(res, 200, model) : sendJsonError(res, 404, 'not_found', 'model not found');
    }
    if (aci && req.method === 'GET' && path.startsWith('/v1/aci/receipts/')) {
      const r = aciReceipts.get(decodeURIComponent(path.slice('/v1/aci/receipts/'.length)));
      if (!r || r.owner !== owner) return sendJsonError(res, 404, 'not_found', 'receipt not found');
      return sendJson(res, 200, r.doc);
    }
    if (near && req.method === 'GET' && path.startsWith('/v1/signature/')) {
      const r = nearSignatures.get(decodeURIComponent(path.slice('/v1/signature/'.length)));
      if (!r || r.owner !== owner) return sendJsonError(res, 404, 'not_found', 'signature not found');
      return sendJson(res, 200, r.signature);
    }
    if (pinaivu && req.method === 'GET' && path.startsWith('/v1/receipts/')) {
      const r = pinaivuDocs.get(decodeURIComponent(path.slice('/v1/receipts/'.length)));
      if (!r || r.owner !== owner) return sendJsonError(res, 404, 'not_found', 'receipt not found');
      return sendJson(res, 200, r.receipt);
    }
    if (req.method === 'GET' && path.startsWith('/v1/receipts/')) {
      const id = decodeURIComponent(path.slice('/v1/receipts/'.length));
      if (id === '') return sendJsonError(res, 400, 'missing_field', 'path parameter id is empty');
      const jws = receipts.get(id, owner);
      if (!jws) return sendJsonError(res, 404, 'not_found', 'receipt not found');
      return sendJson(res, 200, { id, receipt: jws });
    }
    req.resume();
    return sendJsonError(res, 404, 'not_found', `no route ${req.method} ${path}`);
  };

  const sim = createSimServer({ cert: identity.certPem, key: identity.keyPem }, { http1Only: opts.http1Only === true, http2WindowBytes: opts.http2WindowBytes }, (req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) sendJsonError(res, 500, 'internal_error', 'simulator error');
      else res.destroy();
    });
  });
  const server = sim.server;
  // The key each connection was handshaken with (a rotation changes it for new connections only),
  // read from the certificate the socket presented: a connection accepted before a rotation
  // completes its handshake with the old key, whatever `identity` says by then.
  server.on('secureConnection', (s: TLSSocket) => markTlsKey(s, presentedSpkiSha256(s)));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => resolve());
  });
  port = (server.address() as AddressInfo).port;
  const urlHost = host === '0.0.0.0' || host === '127.0.0.1' ? '127.0.0.1' : host;
  if (evidence) evidence.bundleUrl = `https://${urlHost.includes(':') ? `[${urlHost}]` : urlHost}:${port}/trust/router.json`;

  return {
    url: `https://${urlHost.includes(':') ? `[${urlHost}]` : urlHost}:${port}`,
    port,
    caPem: ca.certPem,
    get spkiSha256() {
      return identity.spkiSha256;
    },
    get fingerprint() {
      return identity.fingerprint;
    },
    faults,
    receipts,
    lastAuthorizationSha256: lastAuth,
    requestCounts: counts,
    requestsByTlsKey: byKey,
    recentRequests: recent,
    h2RequestCounts: h2Counts,
    connections: () => sim.connections(),
    goaways: () => goaways,
    async rotateTlsKey(o = {}) {
      const issuer = o.foreignCa ? await generateTestCa({ commonName: 'tresor-sim foreign CA' }) : ca;
      identity = await generateTlsIdentity(hosts, { commonName: `tresor-sim-${Date.now()}`, issuer });
      sim.setSecureContext({ cert: identity.certPem, key: identity.keyPem });
      // Like a router restarting with its new key: idle keep-alive connections (old key) go away.
      sim.closeIdle();
    },
    rotateReceiptKey: () => receipts.rotate(),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        sim.closeAll();
      }),
  };
}

/**
 * The TLS key a connection was handshaken with, kept on the TLS socket itself: an HTTP/2
 * request's `socket` is a proxy that reads properties through to the session's TLS socket, so
 * the same lookup serves HTTP/1.1 and HTTP/2 requests.
 */
const TLS_KEY = 'tresorSimTlsSpkiSha256';
function markTlsKey(socket: object, spkiSha256: string): void {
  (socket as Record<string, unknown>)[TLS_KEY] = spkiSha256;
}
function presentedSpkiSha256(socket: TLSSocket): string {
  const cert = socket.getCertificate();
  return cert && 'raw' in cert ? spkiSha256(new X509Certificate(cert.raw)) : 'unknown';
}
function tlsKeyOf(socket: object): string {
  const key = (socket as Record<string, unknown>)[TLS_KEY];
  return typeof key === 'string' ? key : 'unknown';
}
