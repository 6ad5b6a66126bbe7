import { request } from 'undici';
import { afterEach, describe, expect, test } from 'vitest';
import { startHarness, type Harness } from '../helpers/harness.js';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()?.();
});

async function harness(opts: Parameters<typeof startHarness>[0] = {}): Promise<Harness> {
  const h = await startHarness(opts);
  cleanups.push(() => h.close());
  return h;
}

const verifiedKeys = (h: Harness) => h.logs.records.filter((r) => r.event === 'attestation.verified').map((r) => r.spkiSha256 as string);

describe.each(['snp', 'nitro'] as const)('the router rotates its TLS key while the daemon runs (%s evidence)', (kind) => {
  test('the next request re-attests the new key by itself and succeeds; the CA file still trusts the stable simulator CA', async () => {
    const h = await harness({ evidenceKind: kind });
    const first = await request(`${h.base}/models`);
    expect(first.statusCode).toBe(200);
    await first.body.dump();
    const oldKey = h.sim.spkiSha256;
    expect(first.headers['x-tresor-tls-spki-sha256']).toBe(oldKey);
    expect(first.headers['x-tresor-attestation-kind']).toBe(kind);
    expect(first.headers[kind === 'nitro' ? 'x-tresor-pcr0' : 'x-tresor-measurement']).toBe(h.evidence.measurement);

    await h.sim.rotateTlsKey();
    const newKey = h.sim.spkiSha256;
    expect(newKey).not.toBe(oldKey);
    // Nothing is reset by hand: the simulator dropped its idle connections on the old key; the
    // daemon's pool opens a new one and the connector attests the unknown key before using it.
    await new Promise((r) => setTimeout(r, 100));
    const before = h.sim.requestCounts.get('/attestation') ?? 0;
    const next = await request(`${h.base}/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'eu/tresor/gpt-oss-120b', messages: [{ role: 'user', content: 'after rotation' }] }),
    });
    expect(next.statusCode).toBe(200);
    await next.body.dump();
    expect(next.headers['x-tresor-attestation']).toBe('verified; nonce-bound; channel: bound; test roots');
    expect(next.headers['x-tresor-tls-spki-sha256']).toBe(newKey);
    expect(h.sim.requestCounts.get('/attestation') ?? 0).toBe(before + 1);
    expect(verifiedKeys(h)).toContain(newKey);
    const rotated = h.logs.records.find((r) => r.event === 'attestation.verified' && r.spkiSha256 === newKey);
    expect(rotated).toMatchObject({ reason: 'connection', newKey: true, kind });
  });
});
