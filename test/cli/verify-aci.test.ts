import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { spawnBin } from '../helpers/spawn.js';
import { keysetDigest, reportDataFor } from '../../src/aci/index.js';
import { toHex } from '../../src/util/bytes.js';

const VECTORS = new URL('../vectors/aci-v1-current.json', import.meta.url).pathname;
const vec = JSON.parse(readFileSync(VECTORS, 'utf8'));
const AT = '2026-06-01T00:00:00Z';
let dir: string;
const f = (name: string) => join(dir, name);

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tresor-aci-cli-'));
  await writeFile(f('receipt.json'), JSON.stringify(vec.receipt.document, null, 2));
  await writeFile(f('keyset.json'), JSON.stringify(vec.workload_keyset));
  await writeFile(f('req'), vec.receipt.request_body_ascii);
  await writeFile(f('res'), vec.receipt.response_body_ascii);
  const tampered = structuredClone(vec.receipt.document);
  tampered.model = 'demo-modeL';
  await writeFile(f('tampered.json'), JSON.stringify(tampered));
  // A report whose TDX evidence is the real tinfoil quote: the quote verifies, its REPORTDATA does not bind this keyset.
  const quote = readFileSync(new URL('../vectors/tdx-tinfoil-quote-v4.bin', import.meta.url)).subarray(0, 4936);
  const report = {
    api_version: 'aci/1',
    workload_keyset_digest: keysetDigest(vec.workload_keyset),
    attestation: { tee_type: 'tdx', workload_keyset: vec.workload_keyset, report_data: toHex(reportDataFor(vec.workload_keyset_digest, vec.attestation_statement.nonce)), evidence: { quote: toHex(quote) } },
  };
  await writeFile(f('report.json'), JSON.stringify(report));
  // The real dcap-qvl quote with the collateral its PCCS served (valid 2025-06-19..2025-07-19).
  const dcap = readFileSync(new URL('../vectors/tdx-dcap-qvl-quote-2025-06.bin', import.meta.url));
  await writeFile(f('report-dcap.json'), JSON.stringify({ ...report, attestation: { ...report.attestation, evidence: { quote: toHex(dcap) } } }));
  await writeFile(f('legacy.json'), JSON.stringify({ ...report, signing_address: '0x00', intel_quote: toHex(quote) }));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function run(args: string[]) {
  const p = spawnBin('tresor-verify', ['aci', ...args]);
  const code = await p.exited;
  return { code, out: p.stdout(), err: p.stderr() };
}

describe('tresor-verify aci', () => {
  test('PASS for the spec receipt with the pinned keyset (the vector file works as a keyset too) and both bodies', async () => {
    const r = await run([f('receipt.json'), '--keyset', VECTORS, '--request-body', f('req'), '--response-body', f('res'), '--at', AT]);
    expect(r.code).toBe(0);
    expect(r.out).toContain('PASS\n');
    expect(r.out).toMatch(/Key ID:\s+receipt-1 \(ed25519\)\n/);
    expect(r.out).toMatch(/Request hash:\s+match\n/);
    expect(r.out).toMatch(/Response hash:\s+match\n/);
    expect(r.out).toContain(`Keyset digest:  ${vec.workload_keyset_digest}`);
    const j = await run([VECTORS, '--keyset', f('keyset.json'), '--json', '--at', AT]);
    expect(j.code).toBe(0);
    const o = JSON.parse(j.out);
    expect(o.ok).toBe(true);
    expect(o.signing_input_sha256).toBe(vec.receipt.signing_input_sha256);
    expect(o.upstream.session_id).toBe(vec.session.session_id);
  });
  test('a tampered receipt fails the signature (exit 4)', async () => {
    const r = await run([f('tampered.json'), '--keyset', f('keyset.json')]);
    expect(r.code).toBe(4);
    expect(r.out).toMatch(/^FAIL ERR_ACI_RECEIPT_SIGNATURE: /);
  });
  test('bodies that do not match fail as policy (exit 5), every failing check listed', async () => {
    const r = await run([f('receipt.json'), '--keyset', f('keyset.json'), '--request-body', f('res'), '--response-body', f('req'), '--json']);
    expect(r.code).toBe(5);
    const o = JSON.parse(r.out);
    expect(o.error.code).toBe('ERR_ACI_REQUEST_HASH');
    expect(o.error.violations.map((v: { code: string }) => v.code)).toEqual(['ERR_ACI_REQUEST_HASH', 'ERR_ACI_RESPONSE_HASH']);
  });
  test('--attestation: the TDX quote is verified for real, and its REPORTDATA does not bind this keyset (exit 5)', async () => {
    const r = await run([f('receipt.json'), '--attestation', f('report.json'), '--nonce', vec.attestation_statement.nonce, '--at', AT]);
    expect(r.out).toMatch(/^FAIL ERR_POLICY_TDX_REPORT_DATA: /);
    expect(r.code).toBe(5);
  });
  test('--attestation with our nonce missing: the statement binding fails first (exit 4)', async () => {
    const r = await run([f('receipt.json'), '--attestation', f('report.json'), '--at', AT]);
    expect(r.out).toMatch(/^FAIL ERR_ACI_REPORT_DATA: /);
    expect(r.code).toBe(4);
  });
  test('a legacy /v1/attestation/report is refused as a source of keys (exit 5)', async () => {
    const r = await run([f('receipt.json'), '--attestation', f('legacy.json'), '--nonce', vec.attestation_statement.nonce]);
    expect(r.out).toMatch(/^FAIL ERR_ACI_LEGACY_REPORT: /);
    expect(r.code).toBe(5);
  });
  test('usage: exactly one of --attestation / --keyset (exit 2); malformed receipt (exit 3)', async () => {
    expect((await run([f('receipt.json')])).code).toBe(2);
    expect((await run([f('receipt.json'), '--keyset', f('keyset.json'), '--attestation', f('report.json')])).code).toBe(2);
    const u = await run([f('receipt.json'), '--keyset', f('keyset.json'), '--request-body', f('missing')]);
    expect(u.code).toBe(2);
    expect(u.out).toMatch(/^FAIL ERR_USAGE_INPUT_UNREADABLE: /);
    const m = await run([f('req'), '--keyset', f('keyset.json')]);
    expect(m.code).toBe(3);
    expect(m.out).toMatch(/^FAIL ERR_ACI_/);
  });
  test('--collateral (as tresor-verify tdx) applies to the TDX quote of --attestation: evaluated, stale refused (exit 4); usage without --attestation (exit 2)', async () => {
    const collateral = new URL('../vectors/tdx-dcap-qvl-quote-2025-06.collateral.json', import.meta.url).pathname;
    const att = [f('receipt.json'), '--attestation', f('report-dcap.json'), '--nonce', vec.attestation_statement.nonce, '--collateral', collateral];
    // Inside the collateral's window it verifies (UpToDate); the quote's REPORTDATA then does not bind this keyset.
    const inside = await run([...att, '--at', '2025-07-01T00:00:00Z']);
    expect(inside.out).toMatch(/^FAIL ERR_POLICY_TDX_REPORT_DATA: /);
    expect(inside.code).toBe(5);
    const stale = await run([...att, '--at', AT]);
    expect(stale.out).toMatch(/^FAIL ERR_TDX_COLLATERAL_STALE: /);
    expect(stale.code).toBe(4);
    expect((await run([f('receipt.json'), '--keyset', f('keyset.json'), '--collateral', collateral])).code).toBe(2);
  });
});
