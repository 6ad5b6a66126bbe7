import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';
import { afterEach, describe, expect, test } from 'vitest';
import { readBounded } from '../../src/util/fetch.js';

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
