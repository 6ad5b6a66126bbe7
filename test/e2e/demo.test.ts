import { expect, test } from 'vitest';
import { spawnBin } from '../helpers/spawn.js';

test('tresor-attest demo: attestation verified, JSON and streaming chat through the OpenAI SDK, exit 0', async () => {
  const p = spawnBin('tresor-attest', ['demo']);
  expect(await p.exited).toBe(0);
  const out = p.stdout();
  expect(out).toMatch(/^attestation +verified: SNP MEASUREMENT [0-9a-f]{24}…$/m);
  expect(out).toMatch(/^ +nonce-bound; channel: bound; test roots \(the simulator's roots, trusted by attestation\.test_roots_file\)$/m);
  expect(out).toMatch(/^chat \(JSON\) +"Simulated answer/m);
  expect(out).toMatch(/^chat \(stream\) +\d+ chunks:/m);
  expect(out).toMatch(/^receipt +[0-9a-f]{8}… verified, audit record #\d+$/m);
  expect(out).toMatch(/^result +OK: 2 requests forwarded, 0 errors, 2 of 2 receipts verified$/m);
});

test('tresor-attest demo --profile aci: the keyset attested, both receipts verified', async () => {
  const p = spawnBin('tresor-attest', ['demo', '--profile', 'aci']);
  expect(await p.exited, p.stdout() + p.stderr()).toBe(0);
  const out = p.stdout();
  expect(out).toMatch(/^attestation +verified \(aci\/1\): SNP MEASUREMENT [0-9a-f]{24}…$/m);
  expect(out).toMatch(/^ +keyset sha256:[0-9a-f]{24}…, TLS key pinned until /m);
  expect(out).toMatch(/^receipt +rcpt-[0-9a-f]{8}… verified, audit record #\d+$/m);
  expect(out).toMatch(/^result +OK: 2 requests forwarded, 0 errors, 2 of 2 receipts verified$/m);
});

test('tresor-attest demo --profile pinaivu: the coordinator attested, both receipts verified by their proofs', async () => {
  const p = spawnBin('tresor-attest', ['demo', '--profile', 'pinaivu']);
  expect(await p.exited, p.stdout() + p.stderr()).toBe(0);
  const out = p.stdout();
  expect(out).toMatch(/^attestation +verified \(pinaivu coordinator\): Nitro PCR0 [0-9a-f]{24}…$/m);
  expect(out).toMatch(/^ +not freshness-bound; channel: unbound; test roots /m);
  expect(out).toMatch(/^ +coordinator key [0-9a-f]{24}… pinned \(the TLS key is the gateway's, not bound by the evidence\) until /m);
  expect(out).toMatch(/^receipt +[0-9a-f]{8}-[0-9a-f]{4}… verified, audit record #\d+$/m);
  expect(out).toMatch(/^result +OK: 2 requests forwarded, 0 errors, 2 of 2 receipts verified$/m);
});

test('tresor-attest demo --profile near: the TDX gateway attested, both chat signatures verified', async () => {
  const p = spawnBin('tresor-attest', ['demo', '--profile', 'near']);
  expect(await p.exited, p.stdout() + p.stderr()).toBe(0);
  const out = p.stdout();
  expect(out).toMatch(/^attestation +verified \(near gateway\): TDX MRTD [0-9a-f]{24}…$/m);
  expect(out).toMatch(/^ +gateway 0x[0-9a-f]{40} \(signing address; quote binds the TLS key\) pinned until /m);
  expect(out).toMatch(/^receipt +chatcmpl-[0-9a-f]{4}… verified, audit record #\d+$/m);
  expect(out).toMatch(/^result +OK: 2 requests forwarded, 0 errors, 2 of 2 receipts verified$/m);
});
