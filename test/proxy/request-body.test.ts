import { createHook } from 'node:async_hooks';
import net from 'node:net';
import { Readable } from 'node:stream';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startHarness, type Harness } from '../helpers/harness.js';
import { IdleTimer } from '../../src/proxy/request-body.js';

/**
 * Slow request bodies against a real daemon and simulator on 127.0.0.1: a body is read whole
 * (up to 64 KiB) before an upstream connection is taken, and a stalled body is refused with 408.
 * The pool is tiny (4 connections) so that, before the fix, a handful of slow bodies held every
 * upstream connection and no other request was answered until they finished.
 */
const CHAT = JSON.stringify({ model: 'eu/tresor/gpt-oss-120b', messages: [{ role: 'user', content: 'hello' }] });

/** A raw socket that sent the request head (and `first` body bytes) and collects whatever comes back. */
function openBody(origin: string, head: Record<string, string>, first = ''): { socket: net.Socket; answer: Promise<{ text: string; ms: number }> } {
  const { port } = new URL(origin);
  const socket = net.connect(Number(port), '127.0.0.1');
  const started = Date.now();
  const lines = ['POST /v1/chat/completions HTTP/1.1', `Host: 127.0.0.1:${port}`, 'Content-Type: application/json', ...Object.entries(head).map(([k, v]) => `${k}: ${v}`)];
  socket.write(`${lines.join('\r\n')}\r\n\r\n${first}`);
  const answer = new Promise<{ text: string; ms: number }>((resolve) => {
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', () => undefined);
    socket.on('close', () => resolve({ text: Buffer.concat(chunks).toString('utf8'), ms: Date.now() - started }));
  });
  return { socket, answer };
}

function expect408(text: string) {
  expect(text).toMatch(/^HTTP\/1\.1 408 /);
  const body = JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)) as { error: Record<string, string> };
  expect(body.error).toMatchObject({ type: 'invalid_request_error', code: 'request_timeout' });
  expect(body.error.message).toContain('body_idle_seconds');
}

describe('slow request bodies', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ upstream: { pool: { connections: 4 }, timeouts: { body_idle_seconds: 1 } } });
  });
  afterAll(() => h.close());

  test('40 bodies trickling in at a byte every 250 ms hold no upstream connection: other chat requests are answered promptly', async () => {
    const slow = Array.from({ length: 40 }, () => openBody(h.origin, { 'Content-Length': String(CHAT.length) }, CHAT.slice(0, 5)));
    let sent = 5;
    const trickle = setInterval(() => {
      if (sent < CHAT.length - 1) for (const s of slow) s.socket.write(CHAT[sent] as string);
      sent++;
    }, 250);
    try {
      // Let the slow bodies take whatever they would take.
      await new Promise((r) => setTimeout(r, 300));
      const started = Date.now();
      const answers = await Promise.all(
        Array.from({ length: 6 }, async () => {
          const res = await request(`${h.base}/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: CHAT, headersTimeout: 15_000, bodyTimeout: 15_000 });
          return { status: res.statusCode, body: await res.body.text() };
        }),
      );
      expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200, 200, 200]);
      // Generous: normally well under a second; before the fix they waited for the slow bodies (over 30 s).
      expect(Date.now() - started).toBeLessThan(10_000);
      // The slow clients are still sending, not refused.
      for (const s of slow) expect(s.socket.destroyed).toBe(false);
    } finally {
      clearInterval(trickle);
      for (const s of slow) s.socket.destroy();
    }
  });

  test('a small body that stalls gets 408 (OpenAI error shape) after body_idle_seconds, declared or chunked', async () => {
    const declared = openBody(h.origin, { 'Content-Length': String(CHAT.length) }, CHAT.slice(0, 10));
    const chunked = openBody(h.origin, { 'Transfer-Encoding': 'chunked' }, `a\r\n${CHAT.slice(0, 10)}\r\n`);
    for (const { answer } of [declared, chunked]) {
      const { text, ms } = await answer;
      expect408(text);
      expect(ms).toBeGreaterThanOrEqual(900);
      expect(ms).toBeLessThan(5000);
    }
  });

  test('a large streamed body (over 64 KiB) that stalls midway also gets 408', async () => {
    const big = openBody(h.origin, { 'Content-Length': String(200 * 1024) }, 'x'.repeat(100 * 1024));
    const { text } = await big.answer;
    expect408(text);
  });

  test('bodies buffered whole or streamed past 64 KiB are forwarded byte for byte: their receipts verify (request digest)', async () => {
    const pad = 'p'.repeat(150 * 1024);
    const bodies = [CHAT, JSON.stringify({ model: 'eu/tresor/gpt-oss-120b', messages: [{ role: 'user', content: pad }] })];
    for (const body of bodies) {
      for (const chunked of [false, true]) {
        const payload = chunked
          ? Readable.from(
              (function* () {
                for (let i = 0; i < body.length; i += 10_000) yield Buffer.from(body.slice(i, i + 10_000));
              })(),
            )
          : body;
        const res = await request(`${h.base}/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: payload });
        expect(res.statusCode).toBe(200);
        const id = ((await res.body.json()) as { tresor: { receipt_id: string } }).tresor.receipt_id;
        const v = await fetch(`${h.origin}/receipts/${id}?wait=10`);
        expect(await v.json()).toMatchObject({ status: 'done', verdict: 'verified' });
      }
    }
  });
});

describe('IdleTimer (the request body idle limit)', () => {
  test('one coarse timer per limit, not one per body; it fires only after the limit of silence, and once', async () => {
    let created = 0;
    const hook = createHook({ init: (_id, type) => void (type === 'Timeout' && created++) }).enable();
    const fired = new Map<number, number>();
    const started = Date.now();
    const timers = Array.from({ length: 100 }, (_, i) => new IdleTimer(400, () => fired.set(i, Date.now() - started)));
    hook.disable();
    expect(created).toBeLessThanOrEqual(1);
    // Body 0 keeps sending every 50 ms for 600 ms, bodies 2..99 end at once; body 1 stalls.
    for (const t of timers.slice(2)) t.clear();
    const sending = setInterval(() => timers[0]?.touch(), 50);
    await new Promise((r) => setTimeout(r, 600));
    clearInterval(sending);
    expect([...fired.keys()]).toEqual([1]);
    expect(fired.get(1)).toBeGreaterThanOrEqual(400);
    expect(fired.get(1)).toBeLessThan(400 + 400);
    // Silent from 600 ms on: body 0 is idle no earlier than 1,000 ms.
    await new Promise((r) => setTimeout(r, 700));
    expect([...fired.keys()]).toEqual([1, 0]);
    expect(fired.get(0)).toBeGreaterThanOrEqual(1000);
    timers[0]?.clear();
  });
});
