import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ed25519 } from '@noble/curves/ed25519.js';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { spawnBin } from '../helpers/spawn.js';
import { parseRoutingReceipt, routingIntentMessage } from '../../src/pinaivu/index.js';

const SK = new Uint8Array(32).fill(0x33);
const TS = Date.parse('2026-06-22T11:59:00Z');
let dir: string;
const f = (n: string) => join(dir, n);

function proof() {
  const o: Record<string, unknown> = {
    request_id: '7f1c2d3e-4b5a-4c6d-8e9f-0a1b2c3d4e5f',
    client_id: 'c',
    primary_peer_id: 'p',
    helper_peer_ids: [],
    bid_set_hash: new Array(32).fill(0),
    proof_ids: [],
    aggregated_output_hash: new Array(32).fill(5),
    payouts: [{ sui_address: '0xabc', amount_nanox: 1000 }],
    timestamp_ms: TS,
    coordinator_pubkey: Array.from(ed25519.getPublicKey(SK)),
    signature: new Array(64).fill(0),
  };
  o.signature = Array.from(ed25519.sign(routingIntentMessage(parseRoutingReceipt(o)), SK));
  return o;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tresor-pinaivu-cli-'));
  const p = proof();
  await writeFile(f('proof.json'), JSON.stringify(p));
  await writeFile(f('tampered.json'), JSON.stringify({ ...p, payouts: [{ sui_address: '0xabc', amount_nanox: 1001 }] }));
  await writeFile(f('receipt.json'), JSON.stringify({ request_id: 'req_01j9z4kxm8vwqe3t5p6n7r2y0c', node_id: 'node_9f2a', model: 'llama3.2:3b', timestamp: '2024-04-25T14:32:07Z', payment_amount: 0.000042, coordinator_signature: `0x${'3a'.repeat(65)}` }));
  const cbor = readFileSync(new URL('../vectors/nitro-anjuna-debug-full-2024-01-24.cbor', import.meta.url));
  await writeFile(f('att.json'), JSON.stringify({ raw_cbor_hex: cbor.toString('hex'), timestamp_ms: 1706120065635 }));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function run(args: string[]) {
  const p = spawnBin('tresor-verify', ['pinaivu', ...args]);
  const code = await p.exited;
  return { code, out: p.stdout() };
}

describe('tresor-verify pinaivu', () => {
  test('a valid proof without an attestation: signature passes, the key is unbound, so the verdict is unverifiable (exit 5)', async () => {
    const r = await run([f('proof.json'), '--at', '2026-06-22T12:00:00Z', '--json']);
    expect(r.code).toBe(5);
    const o = JSON.parse(r.out);
    expect(o.ok).toBe(false);
    expect(o.error.code).toBe('ERR_PINAIVU_UNVERIFIABLE');
    expect(o.error.message).toContain('coordinator_key');
  });
  test('a changed payout fails the signature (exit 4)', async () => {
    const r = await run([f('tampered.json'), '--at', '2026-06-22T12:00:00Z']);
    expect(r.code).toBe(4);
    expect(r.out).toMatch(/^FAIL ERR_PINAIVU_SIGNATURE: /);
  });
  test('an attestation whose Nitro document does not carry the coordinator key is refused (exit 5)', async () => {
    const r = await run([f('proof.json'), '--attestation', f('att.json'), '--allow-debug', '--at', '2024-01-24T18:14:30Z']);
    expect(r.out).toMatch(/^FAIL ERR_POLICY_PUBLIC_KEY: /);
    expect(r.code).toBe(5);
  });
  test('the documented receipt: fields checked, signature unverifiable (exit 5 with the reason)', async () => {
    const r = await run([f('receipt.json'), '--at', '2026-06-22T12:00:00Z']);
    expect(r.code).toBe(5);
    expect(r.out).toBe('FAIL ERR_PINAIVU_UNVERIFIABLE: coordinator_signature: signature scheme not public\n');
  });
  test('malformed input (exit 3), --pcr without --attestation (exit 2)', async () => {
    const bad = f('bad.json');
    await writeFile(bad, '{"request_id":"x"}');
    expect((await run([bad])).code).toBe(3);
    const u = await run([f('proof.json'), '--pcr', `0=${'00'.repeat(48)}`]);
    expect(u.code).toBe(2);
    expect(u.out).toMatch(/^FAIL ERR_USAGE_PCR_WITHOUT_ATTESTATION: /);
  });
});
