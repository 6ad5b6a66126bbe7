import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { resolveConfig } from '../../src/config/load.js';
import { Upstream } from '../../src/proxy/upstream.js';
import { startSimulator, type RunningSimulator } from '../../src/sim/index.js';

/**
 * The pin gate of an HTTP/2 pool where undici opens each stream (src/proxy/gated-handler.ts):
 * a request that waited for its connection is not written on it when that connection may no
 * longer carry a stream; it goes out on another one. The pin check here is a function of the
 * socket (the daemon's is AttestationManager.usable).
 */
let sim: RunningSimulator;
let dir: string;
beforeAll(async () => {
  sim = await startSimulator({});
  dir = await mkdtemp(join(tmpdir(), 'tresor-pinned-client-'));
  await writeFile(join(dir, 'ca.pem'), sim.caPem);
});
afterAll(async () => {
  await sim.close();
  await rm(dir, { recursive: true, force: true });
});

function upstream(usable: (socket: TLSSocket) => boolean): Upstream {
  const config = resolveConfig(
    { state_dir: dir, upstreams: [{ name: 'u', url: sim.url, listen: '127.0.0.1:0', ca_file: join(dir, 'ca.pem'), attestation: { mode: 'off' }, pool: { http2: true } }] },
    null,
  );
  return new Upstream(config.upstreams[0] as (typeof config.upstreams)[number], { connectionUsable: (_name, socket) => usable(socket) }, {});
}

describe('PinnedClient over HTTP/2', () => {
  test('a request whose connection turned unusable while it waited is sent on another connection, never on that one', async () => {
    const seen: TLSSocket[] = [];
    // The first connection's pin "lapses" right after it connected: before the waiting request's stream opens.
    const u = upstream((socket) => {
      if (!seen.includes(socket)) seen.push(socket);
      return seen.indexOf(socket) > 0;
    });
    try {
      const [connections, models] = [sim.connections(), sim.requestCounts.get('/v1/models') ?? 0];
      const res = await u.get('/v1/models', { headers: { authorization: 'Bearer tr-x' }, timeoutMs: 10_000, maxBytes: 1 << 20 });
      expect(res.status).toBe(200);
      expect(seen).toHaveLength(2);
      expect(seen[1]?.alpnProtocol).toBe('h2');
      // Two connections, one request: none went out on the first.
      expect(sim.connections() - connections).toBe(2);
      expect((sim.requestCounts.get('/v1/models') ?? 0) - models).toBe(1);
    } finally {
      await u.destroy();
    }
  });

  test('a connection that never passes the gate: the request fails with ERR_ATTEST_PIN_LAPSED after a bounded number of tries', async () => {
    const u = upstream(() => false);
    try {
      const models = sim.requestCounts.get('/v1/models') ?? 0;
      await expect(u.get('/v1/models', { headers: {}, timeoutMs: 10_000, maxBytes: 1 << 20 })).rejects.toMatchObject({ code: 'ERR_ATTEST_PIN_LAPSED' });
      expect(sim.requestCounts.get('/v1/models') ?? 0).toBe(models);
    } finally {
      await u.destroy();
    }
  });
});
