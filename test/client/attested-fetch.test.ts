import net from 'node:net';
import { readFile } from 'node:fs/promises';
import { checkPins } from '../../src/envelope/audit-pins.js';
import { collectAuditFiles } from '../../src/audit/verify.js';
import { loadReleaseRootKey } from '../../src/trust/release-root.js';
import { parsePemCertificates } from '../../src/x509/certificate.js';
import { join } from 'node:path';
import OpenAI from 'openai';
import { FormData as UndiciFormData, fetch as undiciFetch, getGlobalDispatcher, request, setGlobalDispatcher } from 'undici';
import { openStream } from '../helpers/open-stream.js';
import { describe, expect, test } from 'vitest';
import { verdictFor, type AttestedFetch } from '../../src/client/fetch.js';
import {
  AttestationError,
  BundleSignatureInvalid,
  IdentityTagNotAllowedError,
  MeasurementNotAllowedError,
  ReceiptRejectedError,
  ReportDataMismatchError,
  SPKIMismatchError,
  TCBBelowFloorError,
} from '../../src/errors/attestation.js';
import type { VerdictSummary } from '../../src/receipts/verdicts.js';
import type { RouterEvidenceFaults } from '../../src/sim/mint/router.js';
import { attestationErrorOf, verifyAuditLog, verifyReceipt } from '../../src/index.js';
import { readAuditRecords } from '../helpers/audit.js';
import { countingFetch, librarySimFixture, type LibrarySim } from '../helpers/library.js';

let s: LibrarySim;
const { open } = librarySimFixture((started) => (s = started));
const chat = (content: string, stream = false) => JSON.stringify({ model: 'gpt-oss-120b', stream, messages: [{ role: 'user', content }] });
const post = (f: AttestedFetch, body: string) => f(`${s.baseURL}/chat/completions`, { method: 'POST', headers: { authorization: 'Bearer tr-test', 'content-type': 'application/json' }, body });
const count = (path: string) => s.sim.requestCounts.get(path) ?? 0;

describe('attestedFetch with the official OpenAI SDK', () => {
  test('JSON and streamed completions through the attested transport, each receipt verified in-process', async () => {
    const fetch = open({ receipts: 'audit' });
    const client = new OpenAI({ baseURL: s.baseURL, apiKey: 'tr-test', fetch });
    const { data, response } = await client.chat.completions.create({ model: 'gpt-oss-120b', messages: [{ role: 'user', content: 'Hello!' }] }).withResponse();
    expect(data.choices[0]?.message.content).toContain('Hello!');
    expect(await fetch.verdictFor(response)).toMatchObject({ status: 'done', verdict: 'verified' });
    const { data: stream, response: streamed } = await client.chat.completions.create({ model: 'gpt-oss-120b', stream: true, messages: [{ role: 'user', content: 'abc' }] }).withResponse();
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
    expect(text).toContain('abc');
    expect(await verdictFor(streamed)).toMatchObject({ status: 'done', verdict: 'verified' });
  });

  test('an attestation failure reaches openai as the MeasurementNotAllowedError itself (its cause); its retries reach no network and do not attest again; no application byte sent', async () => {
    s.evidence.faults.wrongMeasurement = true;
    const before = s.traffic();
    const counted = countingFetch(s, open());
    const client = new OpenAI({ baseURL: s.baseURL, apiKey: 'tr-test', fetch: counted.fetch });
    const err = await client.chat.completions.create({ model: 'gpt-oss-120b', messages: [{ role: 'user', content: 'x' }] }).catch((e: unknown) => e);
    // openai wraps every fetch rejection in APIConnectionError and keeps it as `cause`, unchanged.
    expect(err).toBeInstanceOf(OpenAI.APIConnectionError);
    expect(err).not.toBeInstanceOf(OpenAI.APIConnectionTimeoutError);
    expect((err as Error).cause).toBeInstanceOf(MeasurementNotAllowedError);
    expect((err as Error).cause).toMatchObject({ code: 'ERR_ATTEST_MEASUREMENT_NOT_ALLOWED', phase: 'verify' });
    expect(attestationErrorOf(err)).toBe((err as Error).cause);
    // Identical: the very object the last fetch call rejected with (each a MeasurementNotAllowedError).
    expect((err as Error).cause).toBe(counted.rejections.at(-1));
    for (const r of counted.rejections) expect(r).toMatchObject({ name: 'MeasurementNotAllowedError', code: 'ERR_ATTEST_MEASUREMENT_NOT_ALLOWED' });
    // The SDK tried three times (maxRetries 2); the two retries found the circuit open: not a
    // connection more than the first attempt made, no attestation, nothing of the request.
    const after = s.traffic();
    expect(counted.calls).toHaveLength(3);
    expect(counted.calls[0]).toEqual(before);
    expect(counted.calls.slice(1)).toEqual([after, after]);
    expect(after.attestations - before.attestations).toBe(1);
    expect(after.application).toBe(before.application);
  });
});

describe('plain fetch: each attestation fault is its named error, before any application byte', () => {
  test.each([
    ['wrongMeasurement', MeasurementNotAllowedError, 'ERR_ATTEST_MEASUREMENT_NOT_ALLOWED'],
    ['tagNotAllowed', IdentityTagNotAllowedError, 'ERR_ATTEST_TAG_NOT_ALLOWED'],
    ['lowTcb', TCBBelowFloorError, 'ERR_ATTEST_TCB_BELOW_FLOOR'],
    ['wrongReportData', ReportDataMismatchError, 'ERR_ATTEST_REPORT_DATA_MISMATCH'],
    ['claimSpki', SPKIMismatchError, 'ERR_ATTEST_SPKI_MISMATCH'],
    ['badBundleSignature', BundleSignatureInvalid, 'ERR_BUNDLE_SIGNATURE_INVALID'],
  ] as const)('%s is refused with its named error', async (fault, Named, code) => {
    Object.assign(s.evidence.faults, { [fault]: fault === 'claimSpki' ? 'ab'.repeat(32) : true } satisfies RouterEvidenceFaults);
    const chats = count('/v1/chat/completions');
    const err = await post(open(), chat('secret')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Named);
    expect(err).toBeInstanceOf(AttestationError);
    expect(err).toMatchObject({ code });
    expect(count('/v1/chat/completions')).toBe(chats);
  });

  test('a TLS key rotation: the same agent attests the new key on its next connection before using it', async () => {
    const f = open();
    const ask = async (content: string) => {
      // reset: the connection closes after the answer, so the next request opens a new one.
      const res = await request(`${s.baseURL}/chat/completions`, { dispatcher: f.agent, method: 'POST', reset: true, headers: { authorization: 'Bearer tr-test', 'content-type': 'application/json' }, body: chat(content) });
      expect(res.statusCode).toBe(200);
      await res.body.text();
    };
    await ask('before');
    const old = s.sim.spkiSha256;
    await s.sim.rotateTlsKey();
    expect(s.sim.spkiSha256).not.toBe(old);
    const attestations = count('/attestation');
    await ask('after');
    expect(count('/attestation')).toBe(attestations + 1);
    const pinned = ((await f.agent.status()).identities as { spkiSha256: string }[]).map((i) => i.spkiSha256);
    expect(pinned).toEqual([old, s.sim.spkiSha256]);
  });

  test('setGlobalDispatcher: undici.fetch without a dispatcher option goes through the attested agent', async () => {
    const previous = getGlobalDispatcher();
    const f = open({ receipts: 'audit' });
    setGlobalDispatcher(f.agent);
    try {
      const res = await undiciFetch(`${s.baseURL}/chat/completions`, { method: 'POST', headers: { authorization: 'Bearer tr-test', 'content-type': 'application/json' }, body: chat('global') });
      await res.text();
      expect(await verdictFor(res)).toMatchObject({ verdict: 'verified' });
    } finally {
      setGlobalDispatcher(previous);
    }
  });

  test('requests to another origin are refused, not sent', async () => {
    const err = await open()('https://example.invalid/v1/models').catch((e: unknown) => e);
    expect((err as Error).cause).toMatchObject({ code: 'ERR_ORIGIN_NOT_ATTESTED' });
  });

  test('HTTPS_PROXY: the connection is tunnelled through the proxy and still attested', async () => {
    const connects: string[] = [];
    const proxy = net.createServer((client) => {
      client.once('data', (head: Buffer) => {
        const m = /^CONNECT (\S+):(\d+) /.exec(head.toString());
        if (!m) return client.destroy();
        connects.push(`${m[1]}:${m[2]}`);
        const up = net.connect(Number(m[2]), m[1] as string, () => {
          client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
          client.pipe(up).pipe(client);
        });
        up.on('error', () => client.destroy());
      });
      client.on('error', () => client.destroy());
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    try {
      const url = `http://127.0.0.1:${(proxy.address() as net.AddressInfo).port}`;
      const res = await post(open({ env: { HTTPS_PROXY: url } }), chat('through a proxy'));
      expect(res.status).toBe(200);
      await res.text();
      expect(connects).toContain(`127.0.0.1:${s.sim.port}`);
    } finally {
      proxy.close();
    }
  });
});

describe('receipts in-process', () => {
  test('in memory: the verdict callback and verdictFor agree; the receipt re-verifies with verifyReceipt', async () => {
    const seen: VerdictSummary[] = [];
    const f = open({ receipts: 'audit', onVerdict: (v: VerdictSummary) => seen.push(v) });
    const body = chat('count me');
    const res = await post(f, body);
    const text = await res.text();
    const v = await f.verdictFor(res);
    expect(v).toMatchObject({ status: 'done', verdict: 'verified' });
    await new Promise((r) => setTimeout(r, 10));
    expect(seen.map((x) => x.request_id)).toContain(v.request_id);
    const id = (JSON.parse(text) as { tresor: { receipt_id: string } }).tresor.receipt_id;
    const jwks = await (await f(`${s.sim.url}/.well-known/jwks.json`)).text();
    const { createHash } = await import('node:crypto');
    const sha = (b: string) => new Uint8Array(createHash('sha256').update(b).digest());
    const again = await verifyReceipt(s.sim.receipts.peek(id) as string, { jwks, expect: { receiptId: id, requestSha256: sha(body), responseSha256: sha(text) } });
    // Given only the JWKS, the router evidence the receipt embeds is not checked: never `verified` (docs/wire.md §2.1).
    expect(again).toMatchObject({ verdict: 'unverifiable', code: 'ERR_RECEIPT_ATTESTATION_UNCHECKED' });
    expect(again.checks.filter((c) => c.result === 'fail')).toEqual([]);
    const checked = await verifyReceipt(s.sim.receipts.peek(id) as string, {
      jwks,
      expect: { receiptId: id, requestSha256: sha(body), responseSha256: sha(text) },
      hooks: { verifyRouterAttestation: () => Promise.resolve({ result: 'pass' as const }) },
    });
    expect(checked.verdict).toBe('verified');
    const noKey = await verifyReceipt(s.sim.receipts.peek(id) as string, { jwks: '{"keys":[]}' }).catch((e: unknown) => e);
    expect(noKey).toBeInstanceOf(AttestationError);
    expect(noKey).toMatchObject({ code: expect.stringMatching(/^ERR_JWKS_/) });
  });

  test('with a state dir: journal and hash-chained audit log on disk, which verifyAuditLog accepts; the pin and its evidence re-verify', async () => {
    const stateDir = join(s.dir, 'state');
    const f = open({ receipts: 'audit', stateDir });
    const res = await post(f, chat('record me'));
    await res.text();
    // seq 1 is the pin's attestation record, written before the receipt record that names it.
    expect(await f.verdictFor(res)).toMatchObject({ verdict: 'verified', seq: 2 });
    await f.close();
    const report = await verifyAuditLog(join(stateDir, 'audit'));
    expect(report.records).toBe(2);
    expect(report.breaks).toEqual([]);
    const releaseRoot = loadReleaseRootKey(await readFile(s.files.releaseRootFile));
    const testRoots = parsePemCertificates(await readFile(s.files.testRoots, 'utf8'), 'test roots');
    const pins = await checkPins(await collectAuditFiles([join(stateDir, 'audit')]), { releaseRoot, testRoots });
    expect(pins.breaks).toEqual([]);
    expect(pins.pins).toEqual([expect.objectContaining({ upstream: 'router', profile: 'tresor', result: 'verified', evidence: expect.stringMatching(/^[0-9a-f]{64}$/) })]);
    expect(pins.receipts).toEqual({ matched: 1, unlinked: 0, cross_checked: 1, rotated: 0 });
  });

  test("a key rotation mid-stream: the stream's receipt record names the pin of its own (old) connection, a completion made meanwhile the new pin", async () => {
    const stateDir = join(s.dir, 'state-rotation');
    const f = open({ receipts: 'audit', stateDir });
    s.sim.faults.chunkDelayMs = 30;
    try {
      const streamed = await post(f, chat('a prompt long enough for a dozen chunks of streamed answer', true));
      const reader = (streamed.body as ReadableStream<Uint8Array>).getReader();
      await reader.read();
      await s.sim.rotateTlsKey();
      const other = await post(f, chat('meanwhile'));
      await other.text();
      while (!(await reader.read()).done);
      const [a, b] = [await f.verdictFor(streamed), await f.verdictFor(other)];
      await f.close();
      const records = await readAuditRecords(stateDir);
      // By the time of verification: the two records are appended as their evidence is made durable, not necessarily in that order.
      const pins = records.filter((r) => r.type === 'attestation').sort((x, y) => String(x.verified_at).localeCompare(String(y.verified_at)));
      expect(pins).toHaveLength(2);
      const bySeq = (seq: unknown) => records.find((r) => r.seq === seq)?.attestation;
      expect(bySeq(a.seq)).toMatchObject({ evidence: pins[0]?.evidence, tls_spki_sha256: pins[0]?.tls_spki_sha256 });
      expect(bySeq(b.seq)).toMatchObject({ evidence: pins[1]?.evidence, tls_spki_sha256: pins[1]?.tls_spki_sha256 });
      expect(pins[0]?.tls_spki_sha256).not.toBe(pins[1]?.tls_spki_sha256);
    } finally {
      s.sim.faults.chunkDelayMs = 0;
    }
  });

  test('strict: a tampered receipt fails the response body (undici: "terminated") with ReceiptRejectedError as its cause', async () => {
    s.sim.faults.receiptTamper = true;
    const res = await post(open({ receipts: 'strict' }), chat('tamper'));
    expect(res.status).toBe(200);
    const err = await res.text().catch((e: unknown) => e);
    expect((err as Error).cause).toBeInstanceOf(ReceiptRejectedError);
    expect((err as Error).cause).toMatchObject({ code: expect.stringMatching(/^ERR_RECEIPT_/) });
  });

  test('an answer without a receipt (an error status) resolves verdict none; a response from elsewhere is a usage error', async () => {
    const f = open({ receipts: 'audit' });
    const res = await post(f, '{"model":');
    expect(res.status).toBe(400);
    await res.text();
    expect(await f.verdictFor(res)).toMatchObject({ verdict: 'none', code: 'ERR_RECEIPT_NOT_EXPECTED' });
    await expect(verdictFor(new Response('x'))).rejects.toMatchObject({ code: 'ERR_RECEIPT_NO_EXCHANGE' });
  });
});

describe('HTTP/2 to the router (upstream.pool.http2)', () => {
  test("by default ('streams') the OpenAI SDK's stream rides h2 and its JSON request HTTP/1.1, through fetch's string body", async () => {
    const fetch = open({ receipts: 'audit' });
    const client = new OpenAI({ baseURL: s.baseURL, apiKey: 'tr-test', fetch, maxRetries: 0 });
    const [h2Before, allBefore] = [s.sim.h2RequestCounts.get('/v1/chat/completions') ?? 0, count('/v1/chat/completions')];
    await client.chat.completions.create({ model: 'gpt-oss-120b', messages: [{ role: 'user', content: 'json' }] });
    expect(s.sim.h2RequestCounts.get('/v1/chat/completions') ?? 0).toBe(h2Before);
    const stream = await client.chat.completions.create({ model: 'gpt-oss-120b', messages: [{ role: 'user', content: 'stream' }], stream: true });
    for await (const _chunk of stream);
    expect(s.sim.h2RequestCounts.get('/v1/chat/completions') ?? 0).toBe(h2Before + 1);
    expect(count('/v1/chat/completions') - allBefore).toBe(2);
  });

  test('a streamed upload does not wait for the streams in flight on the shared h2 connection: it goes over an attested HTTP/1.1 connection of its own, as in the daemon', async () => {
    const fetch = open({ receipts: 'audit', upstream: { pool: { http2: true } } });
    const client = new OpenAI({ baseURL: s.baseURL, apiKey: 'tr-test', fetch, maxRetries: 0 });
    await client.chat.completions.create({ model: 'gpt-oss-120b', messages: [{ role: 'user', content: 'warm' }] });
    const h2Before = s.sim.h2RequestCounts.get('/v1/audio/transcriptions') ?? 0;
    s.sim.faults.chunkDelayMs = 250;
    try {
      const running = await openStream(client, 'gpt-oss-120b');
      // undici writes a streamed body only when nothing else is in flight on its connection: on the shared h2 connection this upload waited for the whole stream.
      // undici's FormData (the openai SDK refuses a fetch that is not the global one for uploads); fetch streams it.
      const form = new UndiciFormData();
      form.append('model', 'whisper-large-v3');
      form.append('file', new File([Buffer.alloc(1_000_000, 7)], 'a.wav', { type: 'audio/wav' }));
      const response = await fetch(`${s.baseURL}/audio/transcriptions`, { method: 'POST', headers: { authorization: 'Bearer tr-test' }, body: form });
      expect(response.status).toBe(200);
      await response.text();
      expect(running.ended()).toBe(false);
      await running.drained;
      expect(s.sim.h2RequestCounts.get('/v1/audio/transcriptions') ?? 0).toBe(h2Before);
      expect(await fetch.verdictFor(response)).toMatchObject({ status: 'done', verdict: 'verified' });
    } finally {
      s.sim.faults.chunkDelayMs = 0;
    }
  });

  test('a router GOAWAY: the stream it is answering finishes, the request it did not process goes out again on a new attested connection', async () => {
    const f = open({ receipts: 'audit', upstream: { pool: { http2: true } } });
    const post = (body: string) => request(`${s.baseURL}/chat/completions`, { dispatcher: f.agent, method: 'POST', headers: { authorization: 'Bearer tr-test', 'content-type': 'application/json' }, body });
    Object.assign(s.sim.faults, { chunkDelayMs: 30 });
    try {
      const stream = await post(chat('streamed while the router goes away', true));
      expect(stream.statusCode).toBe(200);
      const chunks = stream.body[Symbol.asyncIterator]();
      let text = Buffer.from((await chunks.next()).value as Buffer).toString();
      const [connections, goaways, chats] = [s.sim.connections(), s.sim.goaways(), count('/v1/chat/completions')];
      s.sim.faults.goawayNextStream = true;
      const res = await post(chat('sent as the router goes away'));
      expect(res.statusCode).toBe(200);
      expect(await res.body.text()).toContain('sent as the router goes away');
      for (let c = await chunks.next(); !c.done; c = await chunks.next()) text += Buffer.from(c.value as Buffer).toString();
      expect(text.trimEnd().endsWith('data: [DONE]')).toBe(true);
      expect(s.sim.goaways() - goaways).toBe(1);
      // Refused unprocessed, then answered once over a new connection (attested: its key is pinned).
      expect(count('/v1/chat/completions') - chats).toBe(1);
      expect(s.sim.connections()).toBeGreaterThan(connections);
      expect(s.sim.h2RequestCounts.get('/v1/chat/completions')).toBeGreaterThanOrEqual(2);
      expect(await f.verdictFor(res)).toMatchObject({ status: 'done', verdict: 'verified' });
    } finally {
      Object.assign(s.sim.faults, { chunkDelayMs: 0, goawayNextStream: false });
    }
  });
});
