import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createPinaivuDeployment, type PinaivuDeployment } from '../../src/sim/mint/pinaivu.js';
import { TEST_ROOTS_FILE } from '../../src/sim/mint/test-roots.js';
import { forgeEvidence, readAuditRecords, rechainAudit } from '../helpers/audit.js';
import { startHarness } from '../helpers/harness.js';
import { until } from '../helpers/otlp-receiver.js';
import { spawnBin } from '../helpers/spawn.js';

/**
 * The daemon against the simulator's Pinaivu coordinator (which signs our nonce here): one
 * completion, its pin archived; then `tresor-verify audit` on copies of the audit directory, as an
 * auditor would, with mutations. A pinaivu pin needs no release root: only the pinned AWS Nitro
 * root, and the simulator's test root when passed.
 */
let p: PinaivuDeployment;
let scratch: string;
let auditDir: string;
let testRoots: string;
let pin: Record<string, unknown>;
let receipt: Record<string, unknown>;

beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'tresor-evidence-pinaivu-'));
  p = await createPinaivuDeployment();
  p.faults.echoNonce = true;
  const h = await startHarness({ pinaivu: p });
  try {
    const res = await fetch(`${h.base}/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'eu/tresor/gpt-oss-120b', messages: [{ role: 'user', content: 'archive me' }] }) });
    expect(res.status).toBe(200);
    await res.arrayBuffer();
    const state = join(h.dir, 'state');
    await until('the receipt record', async () => (await readAuditRecords(state)).some((r) => r.type === 'receipt'));
    await h.daemon.close(500);
    auditDir = join(scratch, 'audit');
    await cp(join(state, 'audit'), auditDir, { recursive: true });
    testRoots = join(scratch, TEST_ROOTS_FILE);
    await cp(join(h.dir, TEST_ROOTS_FILE), testRoots);
  } finally {
    await h.close();
  }
  const records = await readAuditRecords(scratch);
  pin = records.find((r) => r.type === 'attestation') as Record<string, unknown>;
  receipt = records.find((r) => r.type === 'receipt') as Record<string, unknown>;
}, 60_000);
afterAll(async () => {
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

async function verify(dir: string, ...flags: string[]) {
  const proc = spawnBin('tresor-verify', ['audit', dir, ...flags]);
  const code = await proc.exited;
  return { code, out: proc.stdout() };
}
async function copy(): Promise<string> {
  const d = await mkdtemp(join(scratch, 'copy-'));
  await cp(auditDir, d, { recursive: true });
  return d;
}
const readDoc = async (dir: string, id: string) => JSON.parse(await readFile(join(dir, 'evidence', id), 'utf8')) as { blobs: Record<string, string>; policy: Record<string, unknown>; nonce: string };

describe('pinaivu pins: the coordinator attestation archived and re-verified offline', () => {
  test('the pin names its archived evidence: the /get_attestation answer as received, the nonce, the TLS chain, the policy as data', async () => {
    expect(pin).toMatchObject({ profile: 'pinaivu', kind: 'nitro', measurement: p.pcr0, tag: p.coordinatorKey, freshness: 'nonce-bound', channel: 'unbound', test_roots: true });
    expect(pin.evidence).toMatch(/^[0-9a-f]{64}$/);
    expect((receipt.attestation as Record<string, unknown>).evidence).toBe(pin.evidence);
    const doc = await readDoc(auditDir, pin.evidence as string);
    expect(Object.keys(doc.blobs)).toEqual(['attestation']);
    const answer = JSON.parse(await readFile(join(auditDir, 'evidence', doc.blobs.attestation as string), 'utf8')) as { raw_cbor_hex: string; public_key: string };
    expect(answer.public_key).toBe(p.coordinatorKey);
    expect(answer.raw_cbor_hex).toMatch(/^[0-9a-f]+$/i);
    expect(doc.nonce).toMatch(/^[0-9a-f]{64}$/);
    expect(doc.policy).toEqual({ allowed_pcr0: [p.pcr0], allow_debug: false, require_nonce: false, max_document_age_seconds: 600, max_age_seconds: 600 });
  });

  test('with --test-roots (no release root needed): PASS, the pin re-verified at its own time', async () => {
    const { code, out } = await verify(auditDir, '--test-roots', testRoots);
    expect(out).toMatch(/^PASS/);
    expect(code).toBe(0);
    expect(out).toContain('Pins:     1 attestation record(s): 1 re-verified at their own time, 0 failed');
    expect(out).toContain('Linked:   1 receipt record(s) name their pin and agree with it (0 also checked against the router_attestation in their archived receipt, 0 of them issued after a key rotation)');
    expect(out).toContain(`pin ${pin.evidence as string} seq ${pin.seq as number} tresor pinaivu ${pin.verified_at as string}: verified`);
    expect(out).not.toContain('no --release-root');
  });

  test('without --test-roots the simulator coordinator does not chain to the pinned AWS root: ERR_AUDIT_EVIDENCE_INVALID', async () => {
    const { code, out } = await verify(auditDir);
    expect(code).toBe(4);
    expect(out).toMatch(/^FAIL ERR_AUDIT_EVIDENCE_INVALID/);
    expect(out).toContain('ERR_CHAIN_UNTRUSTED');
  });

  test('--evidence ID prints the coordinator attestation verified again, and what it does not bind', async () => {
    const text = await verify(auditDir, '--evidence', pin.evidence as string, '--test-roots', testRoots);
    expect(text.code).toBe(0);
    expect(text.out).toMatch(/^PASS\n/);
    const line = (label: string, value: string) => expect(text.out).toMatch(new RegExp(`\\n${label}: +${value.replace(/[()]/g, '\\$&')}\\n`));
    line('Nitro PCR0', p.pcr0);
    line('Coordinator key', p.coordinatorKey);
    line('Channel', 'unbound');
    line('TLS SPKI SHA-256', `${pin.tls_spki_sha256 as string} (not bound by the evidence)`);
    expect(text.out).toMatch(/Not re-checked:\s+the TLS key: the coordinator's document binds none/);
    const json = JSON.parse((await verify(auditDir, '--evidence', pin.evidence as string, '--test-roots', testRoots, '--json')).out) as Record<string, unknown>;
    expect(json).toMatchObject({ ok: true, profile: 'pinaivu', measurement: p.pcr0, coordinator_pubkey: p.coordinatorKey, channel: 'unbound', freshness: 'nonce-bound' });
  });

  test('an edited /get_attestation blob: ERR_AUDIT_EVIDENCE_HASH', async () => {
    const d = await copy();
    const path = join(d, 'evidence', (await readDoc(d, pin.evidence as string)).blobs.attestation as string);
    await writeFile(path, (await readFile(path, 'utf8')).replace(p.coordinatorKey, 'ab'.repeat(32)));
    const { code, out } = await verify(d, '--test-roots', testRoots);
    expect(code).toBe(4);
    expect(out).toMatch(/ERR_AUDIT_EVIDENCE_HASH: attestation of pin/);
  });

  test('a forged answer naming another coordinator key, stored under its own hash: ERR_AUDIT_EVIDENCE_INVALID (the signed key differs)', async () => {
    const d = await copy();
    const old = (await readDoc(d, pin.evidence as string)).blobs.attestation as string;
    const forged = (await readFile(join(d, 'evidence', old), 'utf8')).replace(p.coordinatorKey, 'ab'.repeat(32));
    await forgeEvidence(d, old, forged);
    const { code, out } = await verify(d, '--test-roots', testRoots);
    expect(code).toBe(4);
    expect(out).toMatch(/ERR_AUDIT_EVIDENCE_INVALID: the evidence [0-9a-f]{16}… does not verify as of .*: ERR_PINAIVU_ATTESTATION_KEY/);
  });

  test('a forged pin document with another nonce: ERR_AUDIT_EVIDENCE_INVALID (the document signs ours)', async () => {
    const d = await copy();
    const doc = await readDoc(d, pin.evidence as string);
    doc.nonce = 'cd'.repeat(32);
    await forgeEvidence(d, pin.evidence as string, JSON.stringify(doc));
    const { code, out } = await verify(d, '--test-roots', testRoots);
    expect(code).toBe(4);
    expect(out).toMatch(/ERR_AUDIT_EVIDENCE_INVALID: .*ERR_POLICY_NONCE/);
  });

  test('an attestation record that names another coordinator key (chain re-hashed): ERR_AUDIT_ATTESTATION_MISMATCH', async () => {
    const d = await copy();
    await rechainAudit(d, (r) => {
      if (r.type === 'attestation') r.tag = 'ab'.repeat(32);
      if (r.type === 'receipt') (r.attestation as Record<string, unknown>).tag = 'ab'.repeat(32);
    });
    const { code, out } = await verify(d, '--test-roots', testRoots);
    expect(code).toBe(4);
    expect(out).toContain('ERR_AUDIT_ATTESTATION_MISMATCH: the attestation record says other than its evidence');
    expect(out).toMatch(/ in tag\n/);
  });

  test('a pin of a profile no re-verifier knows: its own break, ERR_AUDIT_EVIDENCE_UNSUPPORTED', async () => {
    const d = await copy();
    const doc = await readDoc(d, pin.evidence as string);
    const id = await forgeEvidence(d, pin.evidence as string, JSON.stringify({ ...doc, profile: 'acme' }));
    await rechainAudit(d, (r) => {
      if (r.type === 'attestation') r.profile = 'acme';
    });
    const { code, out } = await verify(d, '--test-roots', testRoots);
    expect(code).toBe(4);
    expect(out).toMatch(/^FAIL ERR_AUDIT_EVIDENCE_UNSUPPORTED/);
    expect(out).toContain(`pin ${id} seq ${pin.seq as number} tresor acme ${pin.verified_at as string}: failed ERR_AUDIT_EVIDENCE_UNSUPPORTED`);
    const one = await verify(d, '--evidence', id);
    expect(one.code).toBe(4);
    expect(one.out).toMatch(/^FAIL ERR_AUDIT_EVIDENCE_UNSUPPORTED: pins of profile "acme" cannot be re-verified offline/);
  });
});
