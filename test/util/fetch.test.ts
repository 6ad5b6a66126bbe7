import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Pool, request } from 'undici';
import { afterEach, describe, expect, test } from 'vitest';
import { dispatchGet, readBounded } from '../../src/util/fetch.js';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()?.();
});

/** A real server: /small answers 10 bytes in 2 writes, /big 1 MB, /cut half a declared body and then resets. */
async function server(): Promise<string> {
  const s = http.createServer((req, res) => {
    if (req.url === '/small') {
      res.write('01234');
      setTimeout(() => res.end('56789'), 10);
    } else if (req.url === '/big') res.end(Buffer.alloc(1024 * 1024, 0x61));
    else {
      res.writeHead(200, { 'content-length': '1000' });
      res.write(Buffer.alloc(500));
      setTimeout(() => res.socket?.destroy(), 20);
    }
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  cleanups.push(() => {
    s.closeAllConnections();
    return new Promise((r) => s.close(r));
  });
  return `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
}

describe('readBounded', () => {
  test('reads a body whole across chunks; over the bound it fails with ERR_FETCH_TOO_LARGE and destroys the body; a cut body rejects instead of hanging', async () => {
    const base = await server();
    const small = await request(`${base}/small`);
    expect(Buffer.from(await readBounded(small.body, 10, 'GET /small')).toString()).toBe('0123456789');

    const big = await request(`${base}/big`);
    await expect(readBounded(big.body, 64 * 1024, 'GET /big')).rejects.toMatchObject({ code: 'ERR_FETCH_TOO_LARGE', message: 'GET /big answered more than 65536 bytes' });
    expect(big.body.destroyed).toBe(true);

    const cut = await request(`${base}/cut`);
    await expect(readBounded(cut.body, 1_000_000, 'GET /cut')).rejects.toBeInstanceOf(Error);
  });
});

/** Answers for dispatchGet: every way a receipt GET can go. */
async function getServer(connections = 4): Promise<{ pool: Pool; seen: Map<string, number> }> {
  const seen = new Map<string, number>();
  const s = http.createServer((req, res) => {
    const url = req.url ?? '';
    seen.set(url, (seen.get(url) ?? 0) + 1);
    if (url === '/one') res.end('{"id":"r","receipt":"a.b.c"}');
    else if (url === '/two') {
      res.write('01234');
      setTimeout(() => res.end('56789'), 10);
    } else if (url === '/big') res.end(Buffer.alloc(1024 * 1024, 0x61));
    else if (url === '/cut') {
      res.writeHead(200, { 'content-length': '1000' });
      res.write(Buffer.alloc(500));
      setTimeout(() => res.socket?.destroy(), 20);
    } else if (url === '/busy') {
      res.writeHead(429, { 'retry-after': '7', 'set-cookie': ['a=1', 'b=2'] });
      res.end('slow down');
    } else if (url === '/hints') {
      res.writeEarlyHints({ link: '</x>; rel=preload' });
      res.end('after hints');
    } else if (url === '/slow-body') {
      res.writeHead(200, { 'content-length': '10' });
      res.write('01234');
    } // '/stall': never answers
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const pool = new Pool(`http://127.0.0.1:${(s.address() as AddressInfo).port}`, { connections });
  cleanups.push(async () => {
    await pool.destroy();
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  });
  return { pool, seen };
}

/** What a GET gave: status, headers (but the date), body; or the error's name, code and message. */
async function outcomeOf(p: Promise<{ status: number; headers: Record<string, unknown>; body: Uint8Array }>): Promise<unknown> {
  try {
    const { status, headers, body } = await p;
    const { date: _date, ...rest } = headers;
    return { status, headers: rest, body: Buffer.from(body).toString() };
  } catch (e) {
    const err = e as { name?: string; code?: string; message?: string };
    return { error: err.constructor.name, name: err.name, code: err.code, message: err.message };
  }
}

describe('dispatchGet: what request() + readBounded gave (the oracle), as one handler', () => {
  const oracle = async (pool: Pool, path: string, timeoutMs: number, maxBytes: number) => {
    const res = await pool.request({ path, method: 'GET', headers: { accept: 'application/json' }, signal: AbortSignal.timeout(timeoutMs), headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
    return { status: res.statusCode, headers: res.headers, body: await readBounded(res.body, maxBytes, `GET ${path}`) };
  };
  const fast = (pool: Pool, path: string, timeoutMs: number, maxBytes: number) => dispatchGet(pool, { path, headers: { accept: 'application/json' }, timeoutMs, maxBytes, what: `GET ${path}` });

  test('bodies in one chunk and in several, over the bound, cut short, an error status with its headers, 1xx before the answer', async () => {
    const { pool } = await getServer();
    for (const [path, maxBytes] of [['/one', 1000], ['/two', 10], ['/big', 64 * 1024], ['/cut', 1_000_000], ['/busy', 1000], ['/hints', 1000]] as const) {
      const want = await outcomeOf(oracle(pool, path, 5_000, maxBytes));
      expect(await outcomeOf(fast(pool, path, 5_000, maxBytes)), path).toEqual(want);
    }
    expect(await outcomeOf(fast(pool, '/big', 5_000, 64 * 1024))).toMatchObject({ code: 'ERR_FETCH_TOO_LARGE', message: 'GET /big answered more than 65536 bytes' });
    expect(await outcomeOf(fast(pool, '/busy', 5_000, 1000))).toMatchObject({ status: 429, headers: { 'retry-after': '7', 'set-cookie': ['a=1', 'b=2'] }, body: 'slow down' });
    expect(await outcomeOf(fast(pool, '/hints', 5_000, 1000))).toMatchObject({ status: 200, body: 'after hints' });
  });

  test('the whole exchange is bounded: no answer, or a body that stops, fails with the TimeoutError AbortSignal.timeout gives', async () => {
    const { pool } = await getServer();
    for (const path of ['/stall', '/slow-body']) {
      const t0 = Date.now();
      const got = await outcomeOf(fast(pool, path, 150, 1000));
      expect(Date.now() - t0).toBeGreaterThanOrEqual(140);
      expect(got).toEqual(await outcomeOf(oracle(pool, path, 150, 1000)));
      expect(got).toMatchObject({ name: 'TimeoutError', message: 'The operation was aborted due to timeout' });
    }
  });

  test('a GET given up while it waits for a connection fails when undici would start it (as request() did), and is never sent', async () => {
    const { pool, seen } = await getServer(1);
    const t0 = Date.now();
    const first = outcomeOf(fast(pool, '/slow-body', 400, 1000));
    const queued = outcomeOf(fast(pool, '/one', 100, 1000));
    expect(await queued).toMatchObject({ name: 'TimeoutError' });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(380);
    expect(await first).toMatchObject({ name: 'TimeoutError' });
    expect(seen.get('/one')).toBeUndefined();
  });
});
