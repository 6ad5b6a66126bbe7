import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { afterEach, describe, expect, test } from 'vitest';
import { openTlsSocket, UPSTREAM_SOCKET_HIGH_WATER_MARK } from '../../src/transport/connector.js';
import { generateTlsIdentity } from '../../src/x509/selfsigned.js';

const cleanups: (() => unknown)[] = [];
afterEach(() => {
  while (cleanups.length) cleanups.pop()?.();
});

describe('openTlsSocket', () => {
  test("a 64 KiB request-body read (Node's HTTP parser's largest) and the one before it are written without backpressure", async () => {
    const id = await generateTlsIdentity(['localhost'], { commonName: 'hwm-upstream' });
    let received = 0;
    const server = tls.createServer({ cert: id.certPem, key: id.keyPem }, (s) => s.on('data', (c: Buffer) => (received += c.length)));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    cleanups.push(() => server.close());
    const socket = await openTlsSocket('127.0.0.1', (server.address() as AddressInfo).port, 'localhost', { caPem: id.certPem, connectTimeoutMs: 5_000 });
    cleanups.push(() => socket.destroy());

    expect(socket.writableHighWaterMark).toBe(UPSTREAM_SOCKET_HIGH_WATER_MARK);
    // undici pauses a streamed request body whenever write() returns false: with Node's default
    // 16 KiB mark that was after every chunk. A TLS write completes on a later turn, so the
    // previous chunk may still be counted when the next is written.
    const chunk = Buffer.alloc(64 * 1024, 0x41);
    expect([socket.write(chunk), socket.write(chunk)]).toEqual([true, true]);
    // Past the mark, backpressure still applies (memory stays bounded).
    const more = Array.from({ length: 4 }, () => socket.write(chunk));
    expect(more).toContain(false);
    await once(socket, 'drain');
    await expect.poll(() => received).toBe(6 * chunk.length);
  });
});
