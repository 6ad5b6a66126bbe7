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
  test("at most one 64 KiB read of the app's body is queued before backpressure (a deeper queue brought on mark-compacts)", async () => {
    const id = await generateTlsIdentity(['localhost'], { commonName: 'hwm-upstream' });
    let received = 0;
    const server = tls.createServer({ cert: id.certPem, key: id.keyPem }, (s) => s.on('data', (c: Buffer) => (received += c.length)));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    cleanups.push(() => server.close());
    const socket = await openTlsSocket('127.0.0.1', (server.address() as AddressInfo).port, 'localhost', { caPem: id.certPem, connectTimeoutMs: 5_000 });
    cleanups.push(() => socket.destroy());

    expect(socket.writableHighWaterMark).toBe(UPSTREAM_SOCKET_HIGH_WATER_MARK);
    // undici pauses a streamed request body whenever write() returns false. A TLS write completes
    // on a later turn, so what was written in this turn is still queued: below 64 KiB no
    // backpressure, at 64 KiB (one read of Node's HTTP parser) the body pauses until the queue drains.
    const quarter = Buffer.alloc(16 * 1024, 0x41);
    expect([socket.write(quarter), socket.write(quarter), socket.write(quarter)]).toEqual([true, true, true]);
    expect(socket.write(quarter)).toBe(false);
    await once(socket, 'drain');
    // A whole 64 KiB read alone reaches the mark: the next chunk waits for it to drain (bounded
    // memory, and about one chunk queued at a time).
    expect(socket.write(Buffer.alloc(64 * 1024, 0x42))).toBe(false);
    await once(socket, 'drain');
    await expect.poll(() => received).toBe(2 * 64 * 1024);
  });
});
