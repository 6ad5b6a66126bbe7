import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { Agent, request } from 'undici';
import { describe, expect, test } from 'vitest';
import { processScratch, spawnBin, waitFor } from '../helpers/spawn.js';

const scratch = processScratch('tresor-sim-control-');

/** `tresor-attest sim --control-port 0` as a process: its router URL, control URL and a client that trusts its CA. */
async function simWithControl(name: string, ...args: string[]) {
  const out = join(scratch.dir, name);
  const p = spawnBin('tresor-attest', ['sim', '--port', '0', '--control-port', '0', '--write-dir', out, ...args]);
  scratch.running.push(p);
  await waitFor(p, (o) => o.includes('wrote '), 20_000);
  const control = /control port:\s+(http:\/\/127\.0\.0\.1:\d+)/.exec(p.stdout())?.[1] as string;
  const url = /listening on (https:\/\/\S+)/.exec(p.stdout())?.[1] as string;
  const agent = new Agent({ connect: { ca: readFileSync(join(out, 'sim-ca.pem'), 'utf8') } });
  return { p, control, url, agent };
}

const put = async (control: string, body: string) => {
  const res = await request(`${control}/faults`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body });
  const text = await res.body.text();
  return { status: res.statusCode, text, message: text ? (JSON.parse(text) as { error: { message: string } }).error.message : '' };
};

describe('tresor-attest sim --control-port', () => {
  test('PUT /faults sets each listed family to exactly the named faults (empty list clears); unknown names and unserved families are 400 with a message', async () => {
    const s = await simWithControl('tresor', '--attestation-fault', 'staleIssuedAt');
    const envelope = async () => (await (await request(`${s.url}/attestation`, { dispatcher: s.agent })).body.json()) as { issued_at: string; workload_identity_tag: string };
    // Started with staleIssuedAt: issued an hour ago.
    expect(Date.now() - Date.parse((await envelope()).issued_at)).toBeGreaterThan(3_000_000);
    expect(await put(s.control, '{"attestation": []}')).toEqual({ status: 204, text: '', message: '' });
    expect(Date.now() - Date.parse((await envelope()).issued_at)).toBeLessThan(60_000);

    const bad = await put(s.control, '{"attestation": ["staleIssuedAt", "nope"]}');
    expect(bad.status).toBe(400);
    expect(bad.message).toContain('unknown fault "nope"');
    expect((await put(s.control, '{"pinaivu": ["wrongPcr0"]}')).message).toContain('does not serve that protocol');
    expect((await put(s.control, '{"tdx": []}')).message).toContain('unknown fault family "tdx"');
    expect((await put(s.control, 'not json')).status).toBe(400);
    // Nothing of a refused body was applied: the envelope is still fresh and well formed.
    expect(Date.now() - Date.parse((await envelope()).issued_at)).toBeLessThan(60_000);

    const other = await request(`${s.control}/nope`, { method: 'POST' });
    expect(other.statusCode).toBe(404);
    await other.body.dump();
  }, 60_000);

  test('POST /rotate-tls-key and /rotate-receipt-key answer 204 and rotate; GET /requests says what reached the router', async () => {
    const s = await simWithControl('rotate');
    const spki = () => /TLS SPKI SHA-256:\s+([0-9a-f]{64})/.exec(s.p.stdout())?.[1] as string;
    const kids = async () => ((await (await request(`${s.url}/.well-known/jwks.json`, { dispatcher: s.agent })).body.json()) as { keys: { kid: string }[] }).keys.map((k) => k.kid);
    const before = await kids();
    expect((await request(`${s.control}/rotate-receipt-key`, { method: 'POST' })).statusCode).toBe(204);
    const after = await kids();
    expect(after).toHaveLength(before.length + 1);

    const models = await request(`${s.url}/v1/models`, { headers: { authorization: `Bearer tr-${'1'.repeat(32)}`, 'x-request-id': 'req-before' }, dispatcher: s.agent });
    await models.body.dump();
    expect((await request(`${s.control}/rotate-tls-key`, { method: 'POST' })).statusCode).toBe(204);
    const fresh = new Agent({ connect: { ca: readFileSync(join(scratch.dir, 'rotate', 'sim-ca.pem'), 'utf8') } });
    const again = await request(`${s.url}/v1/models`, { headers: { authorization: `Bearer tr-${'1'.repeat(32)}`, 'x-request-id': 'req-after' }, dispatcher: fresh });
    await again.body.dump();
    await fresh.close();
    const seen = (await (await request(`${s.control}/requests`)).body.json()) as { by_path: Record<string, number>; by_tls_key: Record<string, number>; recent: { request_id: string; tls_spki_sha256: string }[] };
    expect(seen.by_path['/v1/models']).toBe(2);
    const [first, second] = seen.recent;
    expect(first).toMatchObject({ request_id: 'req-before', tls_spki_sha256: spki() });
    expect(second?.request_id).toBe('req-after');
    expect(second?.tls_spki_sha256).not.toBe(spki());
    expect(Object.keys(seen.by_tls_key)).toHaveLength(2);
    await s.agent.close();
  }, 60_000);
});
