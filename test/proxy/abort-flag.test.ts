import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Pool } from 'undici';
import { afterEach, describe, expect, test, vi } from 'vitest';
import { AbortFlag } from '../../src/proxy/abort-flag.js';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()?.();
});

/** A real server whose /stall never answers and whose /ok answers at once; counts closed requests. */
async function server() {
  const state = { closed: 0 };
  const s = http.createServer((req, res) => {
    if (req.url === '/ok') res.end('ok');
    else req.socket.once('close', () => state.closed++);
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const pool = new Pool(`http://127.0.0.1:${(s.address() as AddressInfo).port}`);
  cleanups.push(async () => {
    await pool.destroy();
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  });
  return { pool, state };
}

describe('AbortFlag as an undici signal', () => {
  test('abort() ends an in-flight request (the server sees the connection close)', async () => {
    const { pool, state } = await server();
    const flag = new AbortFlag();
    const pending = pool.request({ path: '/stall', method: 'GET', signal: flag });
    setTimeout(() => flag.abort(), 50);
    await expect(pending).rejects.toMatchObject({ name: 'AbortError' });
    await vi.waitFor(() => expect(state.closed).toBe(1), { timeout: 5_000, interval: 10 });
  });
});
