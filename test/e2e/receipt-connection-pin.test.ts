import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { TEST_ROOTS_FILE } from '../../src/sim/mint/test-roots.js';
import { readAuditRecords } from '../helpers/audit.js';
import { startHarness, type Harness } from '../helpers/harness.js';
import { spawnBin } from '../helpers/spawn.js';

/**
 * A key rotation while a stream is open: the stream goes on over the old connection (old key,
 * old pin), a completion made meanwhile goes out on a new connection (new key, new pin). Each
 * receipt record names the pin of the connection its exchange used, not the newest pin.
 */
let h: Harness;
let scratch: string;
let records: Record<string, unknown>[];
const ids = { stream: '', chat: '' };

const post = (stream: boolean) =>
  request(`${h.base}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'eu/tresor/gpt-oss-120b', stream, messages: [{ role: 'user', content: stream ? 'the old connection' : 'the new one' }] }),
  });

beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'tresor-connection-pin-'));
  h = await startHarness({ sim: { deterministic: { jsonBytes: 256, streamChunks: 20, chunkIntervalMs: 40 } } });
  const streamed = await post(true);
  expect(streamed.statusCode).toBe(200);
  ids.stream = String(streamed.headers['x-request-id']);
  const body = streamed.body[Symbol.asyncIterator]();
  await body.next();
  // Mid-stream: the router rotates its key; the next completion needs a new connection (new key, new pin).
  await h.sim.rotateTlsKey();
  const other = await post(false);
  expect(other.statusCode).toBe(200);
  ids.chat = String(other.headers['x-request-id']);
  await other.body.dump();
  let text = '';
  for (let r = await body.next(); !r.done; r = await body.next()) text += (r.value as Buffer).toString();
  expect(text.trimEnd().endsWith('data: [DONE]')).toBe(true);
  const state = join(h.dir, 'state');
  for (let t = Date.now(); (await readAuditRecords(state)).filter((r) => r.type === 'receipt').length < 2; ) {
    if (Date.now() - t > 15_000) throw new Error('the two receipt records were not written');
    await new Promise((r) => setTimeout(r, 50));
  }
  await h.daemon.close(500);
  await cp(join(state, 'audit'), join(scratch, 'audit'), { recursive: true });
  await cp(join(h.dir, 'release-root.pub'), join(scratch, 'release-root.pub'));
  await cp(join(h.dir, TEST_ROOTS_FILE), join(scratch, TEST_ROOTS_FILE));
  records = await readAuditRecords(scratch);
}, 60_000);
afterAll(async () => {
  await h?.sim.close();
  if (h) await rm(h.dir, { recursive: true, force: true });
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

describe('a receipt record names the pin of the connection its exchange used', () => {
  test('the stream that began before the rotation names the old pin; the completion after it, the new pin', () => {
    const pins = records.filter((r) => r.type === 'attestation');
    // Two pins: the start-up one (the old key) and the new connection's; the log may hold them in either order.
    expect(pins.map((p) => p.reason).sort()).toEqual(['connection', 'startup']);
    const old = pins.find((p) => p.reason === 'startup');
    const fresh = pins.find((p) => p.reason === 'connection');
    expect(old?.tls_spki_sha256).not.toBe(fresh?.tls_spki_sha256);
    const receiptOf = (id: string) => records.find((r) => r.type === 'receipt' && r.request_id === id)?.attestation as Record<string, unknown> | undefined;
    expect(receiptOf(ids.stream)).toMatchObject({ evidence: old?.evidence, tls_spki_sha256: old?.tls_spki_sha256 });
    expect(receiptOf(ids.stream)).not.toHaveProperty('pin_lapsed_in_flight');
    expect(receiptOf(ids.chat)).toMatchObject({ evidence: fresh?.evidence, tls_spki_sha256: fresh?.tls_spki_sha256 });
  });

  test('tresor-verify audit re-verifies both pins and finds every receipt matching its own', async () => {
    const p = spawnBin('tresor-verify', ['audit', join(scratch, 'audit'), '--release-root', join(scratch, 'release-root.pub'), '--test-roots', join(scratch, TEST_ROOTS_FILE)]);
    expect(await p.exited).toBe(0);
    expect(p.stdout()).not.toContain('ERR_AUDIT_ATTESTATION_MISMATCH');
    // The stream's receipt was issued after the rotation: the router attests its new key, the one pinned next.
    expect(p.stdout()).toContain('(2 also checked against the router_attestation in their archived receipt, 1 of them issued after a key rotation)');
  });
});
