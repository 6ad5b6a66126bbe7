// The floor contender for #20's receipt targets: the bare passthrough (bench/passthrough.mjs) plus
// exactly the work #20 calls irreducible for a receipt, and nothing else: no attestation, no pin
// check, no header policy, no log line, no metrics, no retries, no verdict store.
//   - both digests: SHA-256 of the request body as forwarded and of the response body as relayed (a
//     chat completion's small body read whole first, a transcription upload's streamed through the hash);
//   - durability before the end of an answer: one journal line per completion, written and
//     fdatasync'ed (one sync per batch of answers finishing together) before `res.end()`;
//   - one more HTTP exchange: `GET /v1/receipts/{id}` on the same pool, 100 ms after the answer (the
//     router stores a receipt once its answer is sent; the daemon's default `receipts.fetch_delay_seconds`),
//     again after 100 ms while it is not there yet (404);
//   - one ES256 verification with the JWKS key (fetched once), the payload parsed, `jti` and both
//     digests compared;
//   - the record: a hash-chained audit line and the archived JWS, each file synced once per 20 ms.
// What the daemon does beyond this (the router attestation inside the receipt is cached per
// identity there; here it is only parsed) is what the daemon's rows pay above this contender's.
// With --fetch-verify-only (the contender `floor-fetch-verify`): the passthrough plus only the receipt's
// GET and its ES256 check (signature and `jti`): no digests, no journal, no record, no held last chunk.
// What fetching and verifying every receipt costs by itself, the two things #20 keeps whatever else
// a design leaves out ("every receipt fetched and verified").
// With --digest-only (the contender `floor-digest`): the passthrough plus only both digests (an upload's
// request body hashed as it streams through, the answer hashed as it is relayed): no journal, no
// receipt, no record. What binding a receipt to the exact bytes costs by itself, per uploaded MB.
// Usage: node bench/floor-proxy.mjs UPSTREAM_URL CA_FILE STATE_DIR [--h2] [--fetch-verify-only | --digest-only]
//   → prints "listening http://…"; GET /__floor → {pending, verified, failed, missing, unverifiable, dropped}.
import { createHash, createPublicKey, verify as cryptoVerify } from 'node:crypto';
import { once } from 'node:events';
import { fdatasync, openSync, readFileSync, writeSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Pool } from 'undici';

const [upstream, caFile, stateDir] = process.argv.slice(2);
const h2 = process.argv.includes('--h2');
const fetchVerifyOnly = process.argv.includes('--fetch-verify-only');
const digestOnly = process.argv.includes('--digest-only');
const pool = new Pool(upstream, { connections: 1100, allowH2: h2, connect: { ca: readFileSync(caFile, 'utf8') }, keepAliveTimeout: 60_000 });
const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'host']);
const strip = (headers) => Object.fromEntries(Object.entries(headers).filter(([k]) => !HOP.has(k)));
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const syncP = promisify(fdatasync);

/**
 * An append-only file: lines gathered and written with one write and one fdatasync per commit; one
 * commit at a time. The write is synchronous (a small append to the page cache; an asynchronous one
 * costs a hand-off to the libuv pool and back), the fdatasync asynchronous, as in the daemon.
 */
class GroupFile {
  constructor(path, windowMs) {
    this.fd = openSync(path, 'a', 0o600);
    this.windowMs = windowMs;
    this.lines = [];
    this.waiters = [];
    this.busy = false;
    this.timer = undefined;
  }

  /** Resolves once `line` is durable; `urgent` commits at the next turn, otherwise within the window. */
  append(line, urgent) {
    const p = new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
    this.lines.push(line);
    if (urgent) this.schedule(0);
    else this.schedule(this.windowMs);
    return p;
  }

  schedule(ms) {
    if (this.busy) return;
    if (ms === 0) {
      clearTimeout(this.timer);
      this.timer = undefined;
      setImmediate(() => this.commit());
    } else this.timer ??= setTimeout(() => this.commit(), ms);
  }

  async commit() {
    this.timer = undefined;
    if (this.busy || this.lines.length === 0) return;
    this.busy = true;
    const text = this.lines.join('');
    const waiters = this.waiters;
    this.lines = [];
    this.waiters = [];
    try {
      writeSync(this.fd, text);
      await syncP(this.fd);
      for (const w of waiters) w.resolve();
    } catch (e) {
      for (const w of waiters) w.reject(e);
    }
    this.busy = false;
    if (this.lines.length > 0) this.schedule(0);
  }
}

const journal = new GroupFile(join(stateDir, 'journal.jsonl'), 0);
const audit = new GroupFile(join(stateDir, 'audit.jsonl'), 20);
const archive = new GroupFile(join(stateDir, 'receipts.jsonl'), 20);
const counters = { pending: 0, verified: 0, failed: 0, missing: 0, unverifiable: 0, dropped: 0 };
let head = '0'.repeat(64);
let seq = 0;
let jobs = 0;

/** The router's receipt keys by kid (one JWKS fetch at start, as a cached JWKS). */
const keys = new Map();
{
  const res = await pool.request({ method: 'GET', path: '/.well-known/jwks.json' });
  for (const jwk of (await res.body.json()).keys) keys.set(jwk.kid, createPublicKey({ key: jwk, format: 'jwk' }));
}

const RECEIPT_ID = Buffer.from('"receipt_id":"');
/** The receipt id of a completion: the SSE answer's header, else the JSON body's `tresor.receipt_id`. */
function receiptIdOf(headers, body) {
  const h = headers['x-tresor-receipt-id'];
  if (typeof h === 'string') return h;
  const at = body ? body.indexOf(RECEIPT_ID) : -1;
  if (at < 0) return undefined;
  const from = at + RECEIPT_ID.length;
  return body.toString('latin1', from, body.indexOf(0x22, from));
}

/** Fetch, verify and record one receipt (the irreducible part; a failure is counted, never retried). */
async function receipt(id, authorization, requestSha256, responseSha256) {
  let verdict = 'failed';
  let jws;
  try {
    for (let attempt = 1; jws === undefined && attempt <= 5; attempt++) {
      await sleep(100);
      const res = await pool.request({ method: 'GET', path: `/v1/receipts/${encodeURIComponent(id)}`, headers: { authorization } });
      if (res.statusCode === 200) jws = (await res.body.json()).receipt;
      else await res.body.dump();
    }
    const [h, p, s] = jws.split('.');
    const header = JSON.parse(Buffer.from(h, 'base64url').toString('utf8'));
    const key = keys.get(header.kid);
    const signed = key && header.alg === 'ES256' && cryptoVerify('sha256', Buffer.from(jws.slice(0, h.length + 1 + p.length), 'latin1'), { key, dsaEncoding: 'ieee-p1363' }, Buffer.from(s, 'base64url'));
    const claims = JSON.parse(Buffer.from(p, 'base64url').toString('utf8'));
    const digestsMatch = fetchVerifyOnly || (claims.request_digest === `sha256:${requestSha256}` && claims.response_digest === `sha256:${responseSha256}`);
    if (signed && claims.jti === id && digestsMatch) verdict = 'verified';
  } catch {
    verdict = 'failed';
  }
  if (jws === undefined) verdict = 'missing';
  if (fetchVerifyOnly) {
    counters[verdict]++;
    return;
  }
  const jwsSha256 = jws ? createHash('sha256').update(jws).digest('hex') : undefined;
  const line = JSON.stringify({ seq: ++seq, prev: head, type: 'receipt', receipt_id: id, verdict, digests: { request: requestSha256, response: responseSha256 }, receipt_jws_sha256: jwsSha256 });
  head = createHash('sha256').update(head).update(line).digest('hex');
  await Promise.all([audit.append(`${line}\n`, false), jws ? archive.append(`${JSON.stringify({ sha256: jwsSha256, jws })}\n`, false) : undefined]);
  counters[verdict]++;
}

/**
 * A streamed request body, hashed on its way to the upstream (an upload is never held whole): the
 * request itself is handed to undici, which reads it with its own 'data' listener (pausing it for
 * backpressure); this listener, registered first on the paused stream, sees every chunk before
 * undici writes it. No copy, transform or promise per chunk (the daemon's way, src/proxy/forward.ts).
 */
function hashedBody(req, hash) {
  req.pause();
  req.on('data', (chunk) => hash.update(chunk));
  return req;
}

/**
 * --fetch-verify-only: the passthrough's forward (each chunk written as it comes), the answer's
 * receipt id read from it, then only the receipt's GET and ES256 check, after the answer has ended.
 */
async function forwardThenFetch(req, res) {
  const hasBody = req.method !== 'GET' && req.method !== 'HEAD';
  const completion = req.method === 'POST' && (req.url.startsWith('/v1/chat/completions') || req.url.startsWith('/v1/audio/transcriptions'));
  const up = await pool.request({ method: req.method, path: req.url, headers: strip(req.headers), body: hasBody ? req : undefined });
  res.writeHead(up.statusCode, strip(up.headers));
  const json = completion && !String(up.headers['content-type']).startsWith('text/event-stream') ? [] : undefined;
  for await (const chunk of up.body) {
    json?.push(chunk);
    if (!res.write(chunk)) await once(res, 'drain');
  }
  res.end();
  const id = completion && up.statusCode === 200 ? receiptIdOf(up.headers, json && Buffer.concat(json)) : undefined;
  if (id === undefined) return;
  counters.pending++;
  receipt(id, req.headers.authorization).finally(() => counters.pending--);
}

async function forward(req, res) {
  if (fetchVerifyOnly) return forwardThenFetch(req, res);
  const hasBody = req.method !== 'GET' && req.method !== 'HEAD';
  const chat = req.method === 'POST' && req.url.startsWith('/v1/chat/completions');
  const upload = req.method === 'POST' && req.url.startsWith('/v1/audio/transcriptions');
  const completion = chat || upload;
  // A small body complete before the upstream is asked (as the daemon does), an upload streamed; their digest.
  const requestHash = completion ? createHash('sha256') : undefined;
  let body;
  if (upload) body = hashedBody(req, requestHash);
  else if (hasBody) body = Buffer.concat(await req.toArray());
  if (chat) requestHash.update(body);
  const up = await pool.request({ method: req.method, path: req.url, headers: strip(req.headers), body });
  res.writeHead(up.statusCode, strip(up.headers));
  const responseHash = completion ? createHash('sha256') : undefined;
  const json = completion && !String(up.headers['content-type']).startsWith('text/event-stream') ? [] : undefined;
  // A completion's last chunk is held until its job is durable: the app must not see the whole answer before.
  let held;
  for await (const chunk of up.body) {
    responseHash?.update(chunk);
    json?.push(chunk);
    const out = completion ? held : chunk;
    if (completion) held = chunk;
    if (out !== undefined && !res.write(out)) await once(res, 'drain');
  }
  if (digestOnly) {
    requestHash?.digest('hex');
    responseHash?.digest('hex');
    return void res.end(held);
  }
  const id = completion && up.statusCode === 200 ? receiptIdOf(up.headers, json && Buffer.concat(json)) : undefined;
  if (id !== undefined) {
    const requestSha256 = requestHash.digest('hex');
    const responseSha256 = responseHash.digest('hex');
    // Durable before the end of the answer: the job's journal line.
    await journal.append(`${JSON.stringify({ op: 'job', job: ++jobs, receipt_id: id, request_sha256: requestSha256, response_sha256: responseSha256 })}\n`, true);
    counters.pending++;
    receipt(id, req.headers.authorization, requestSha256, responseSha256).finally(() => counters.pending--);
  }
  res.end(held);
}

const server = http.createServer({ keepAliveTimeout: 65_000, requestTimeout: 0, noDelay: true }, async (req, res) => {
  if (req.url === '/__floor') return res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(counters));
  try {
    await forward(req, res);
  } catch {
    if (!res.headersSent) res.writeHead(502).end();
    else res.destroy();
  }
});
server.listen(0, '127.0.0.1', () => process.stdout.write(`listening http://127.0.0.1:${server.address().port}\n`));
process.on('SIGTERM', () => process.exit(0));
