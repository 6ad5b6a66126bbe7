import { cp, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createAciDeployment, type AciDeployment } from '../../src/sim/mint/aci.js';
import { createNearDeployment, type NearDeployment } from '../../src/sim/mint/near.js';
import { mintTdxCollateral } from '../../src/sim/mint/tdx-collateral.js';
import type { TdxTestPki } from '../../src/sim/mint/tdx.js';
import { TEST_ROOTS_FILE } from '../../src/sim/mint/test-roots.js';
import { forgePin, readAuditRecords, rechainAudit } from '../helpers/audit.js';
import { startHarness, type Harness } from '../helpers/harness.js';
import { startTestPccs, type TestPccs } from '../helpers/pccs.js';
import { spawnBin } from '../helpers/spawn.js';

/**
 * The `aci` (TDX and SEV-SNP) and `near` profiles against the simulator: completions made, the
 * daemon stopped, then `tresor-verify audit` on a copy of its audit directory with the test roots
 * only (these profiles have no trust bundle, so no --release-root), as an auditor would, with
 * mutations.
 */
let scratch: string;
beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'tresor-evidence-tdx-'));
});
afterAll(() => rm(scratch, { recursive: true, force: true }));

interface Trail {
  /** The audit directory as an auditor gets it. */
  dir: string;
  testRoots: string;
  records: Record<string, unknown>[];
}

const MODEL = 'eu/tresor/gpt-oss-120b';

/** Run the daemon against `opts`' deployment, make `n` completions, stop it and hand over its audit directory. */
async function trail(name: string, opts: Parameters<typeof startHarness>[0], n: number, between?: (h: Harness) => Promise<void>): Promise<Trail> {
  const h = await startHarness(opts);
  try {
    for (let i = 0; i < n; i++) {
      if (i > 0) await between?.(h);
      const res = await request(`${h.base}/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: `${name} ${i}` }] }) });
      const body = await res.body.text();
      expect(res.statusCode, body).toBe(200);
    }
    const state = join(h.dir, 'state');
    for (let t = Date.now(); (await readAuditRecords(state)).filter((r) => r.type === 'receipt').length < n; ) {
      if (Date.now() - t > 15_000) throw new Error(`the ${n} receipt records were not written`);
      await new Promise((r) => setTimeout(r, 50));
    }
    await h.daemon.close(500);
    const dir = join(scratch, name, 'audit');
    await cp(join(state, 'audit'), dir, { recursive: true });
    const testRoots = join(scratch, name, TEST_ROOTS_FILE);
    await cp(join(h.dir, TEST_ROOTS_FILE), testRoots);
    return { dir, testRoots, records: await readAuditRecords(join(scratch, name)) };
  } finally {
    await h.close();
  }
}

async function verify(dir: string, ...flags: string[]) {
  const p = spawnBin('tresor-verify', ['audit', dir, ...flags]);
  const code = await p.exited;
  return { code, out: p.stdout() };
}

async function copyOf(t: Trail): Promise<string> {
  const d = await mkdtemp(join(scratch, 'copy-'));
  await cp(t.dir, d, { recursive: true });
  return d;
}

const pinsOf = (t: Trail) => t.records.filter((r) => r.type === 'attestation');
const docOf = async (dir: string, id: string) => JSON.parse(await readFile(join(dir, 'evidence', id), 'utf8')) as { blobs: Record<string, string>; nonce: string; policy: Record<string, unknown>; profile: string };

const withTestRoots = (t: Trail) => ['--test-roots', t.testRoots];
const rotate = async (h: Harness) => {
  await h.sim.rotateTlsKey();
  await new Promise((r) => setTimeout(r, 100));
};

/** The checks every profile's trail passes and fails alike. */
function commonChecks(get: () => Trail, profile: string, o: { nonceCode: string; pins: number; receipts: number }) {
  test(`with --test-roots only: PASS, every ${profile} pin re-verified at its own time and every receipt linked`, async () => {
    const t = get();
    expect(pinsOf(t)).toHaveLength(o.pins);
    for (const p of pinsOf(t)) expect(p).toMatchObject({ profile, kind: expect.any(String), evidence: expect.stringMatching(/^[0-9a-f]{64}$/), freshness: 'nonce-bound', channel: 'bound', test_roots: true });
    const { code, out } = await verify(t.dir, ...withTestRoots(t));
    expect(out).toMatch(/^PASS/);
    expect(code).toBe(0);
    expect(out).toContain(`Pins:     ${o.pins} attestation record(s): ${o.pins} re-verified at their own time, 0 failed, 0 checked against their hashes only, 0 without archived evidence`);
    expect(out).toContain(`Linked:   ${o.receipts} receipt record(s) name their pin and agree with it (0 also checked against the router_attestation in their archived receipt, 0 of them issued after a key rotation); 0 name no archived pin`);
    expect(out).not.toContain('no --release-root');
    for (const p of pinsOf(t)) expect(out).toContain(`pin ${p.evidence as string} seq ${p.seq as number} ${p.upstream as string} ${profile} ${p.verified_at as string}: verified`);
  });

  test('without --test-roots the simulator evidence fails to the pinned vendor roots: ERR_AUDIT_EVIDENCE_INVALID', async () => {
    const { code, out } = await verify(get().dir);
    expect(code).toBe(4);
    expect(out).toMatch(/^FAIL ERR_AUDIT_EVIDENCE_INVALID/);
    expect(out).toContain('ERR_CHAIN_UNTRUSTED');
  });

  test('an edited report blob: ERR_AUDIT_EVIDENCE_HASH', async () => {
    const t = get();
    const d = await copyOf(t);
    const doc = await docOf(d, pinsOf(t)[0]?.evidence as string);
    const path = join(d, 'evidence', doc.blobs.report as string);
    const report = await readFile(path, 'utf8');
    await writeFile(path, report.replace(/"(0x)?[0-9a-f]{8}/, (m) => m.slice(0, -1) + (m.endsWith('0') ? '1' : '0')));
    const { code, out } = await verify(d, ...withTestRoots(t));
    expect(code).toBe(4);
    expect(out).toMatch(/break: audit-\d{8}-0001\.jsonl:\d+ ERR_AUDIT_EVIDENCE_HASH: report of pin/);
  });

  test('forged evidence that hashes right (another nonce, renamed, records and chain rewritten): ERR_AUDIT_EVIDENCE_INVALID', async () => {
    const t = get();
    const d = await copyOf(t);
    await forgePin(d, pinsOf(t)[0]?.evidence as string, (doc) => {
      doc.nonce = 'ab'.repeat(32);
    });
    const { code, out } = await verify(d, ...withTestRoots(t));
    expect(code).toBe(4);
    expect(out).toMatch(new RegExp(`ERR_AUDIT_EVIDENCE_INVALID: the evidence [0-9a-f]{16}… does not verify as of .*: ${o.nonceCode}`));
    expect(out).not.toContain('ERR_AUDIT_CHAIN_BROKEN');
  });

  test("the attestation record's measurement changed (chain re-hashed): ERR_AUDIT_ATTESTATION_MISMATCH", async () => {
    const t = get();
    const d = await copyOf(t);
    await rechainAudit(d, (r) => {
      if (r.type === 'attestation') r.measurement = '00'.repeat(48);
    });
    const { code, out } = await verify(d, ...withTestRoots(t));
    expect(code).toBe(4);
    expect(out).toMatch(/^FAIL ERR_AUDIT_ATTESTATION_MISMATCH/);
    expect(out).toMatch(/ERR_AUDIT_ATTESTATION_MISMATCH: the attestation record says other than its evidence [0-9a-f]{16}… proves, in measurement\n/);
  });
}

describe('aci with TDX evidence and Intel collateral (tdx.collateral_file): pins archived, re-verified offline', () => {
  let aci: AciDeployment;
  let t: Trail;
  let collateral: Buffer;
  beforeAll(async () => {
    aci = await createAciDeployment({ tee: 'tdx' });
    const file = join(scratch, 'aci-collateral.json');
    await writeFile(file, JSON.stringify(await mintTdxCollateral(aci.tdxPki as TdxTestPki, { now: new Date() }), null, 1));
    collateral = await readFile(file);
    t = await trail('aci-tdx', { aci, upstream: { tdx: { collateral_file: file } } }, 2, rotate);
  }, 60_000);

  test('each pin archives the report as received and the collateral file byte for byte, shared by both pins', async () => {
    const docs = await Promise.all(pinsOf(t).map((p) => docOf(t.dir, p.evidence as string)));
    const role = `tdx_collateral_${(aci.tdxPki as TdxTestPki).platform.fmspc}`;
    for (const d of docs) {
      expect(d).toMatchObject({ profile: 'aci', nonce: expect.stringMatching(/^[0-9a-f]{64}$/), policy: { tdxCollateral: 'file', allowedMeasurements: [aci.measurement] } });
      expect(Object.keys(d.blobs).sort()).toEqual(['report', role]);
      expect(await readFile(join(t.dir, 'evidence', d.blobs[role] as string))).toEqual(collateral);
      const report = JSON.parse(await readFile(join(t.dir, 'evidence', d.blobs.report as string), 'utf8')) as { attestation: { tee_type: string } };
      expect(report.attestation.tee_type).toBe('tdx');
    }
    expect(docs[0]?.blobs[role]).toBe(docs[1]?.blobs[role]);
    expect(docs[0]?.blobs.report).not.toBe(docs[1]?.blobs.report);
    // 2 pin documents, 2 reports, 1 collateral.
    expect(await readdir(join(t.dir, 'evidence'))).toHaveLength(5);
  });

  commonChecks(() => t, 'aci', { nonceCode: 'ERR_ACI_REPORT_DATA', pins: 2, receipts: 2 });

  test('--evidence ID: the TEE, MRTD, TCB status from the archived collateral, keyset digest, TLS key', async () => {
    const pin = pinsOf(t)[1] as Record<string, unknown>;
    const p = spawnBin('tresor-verify', ['audit', t.dir, '--evidence', pin.evidence as string, ...withTestRoots(t)]);
    expect(await p.exited).toBe(0);
    const out = p.stdout();
    expect(out).toMatch(/^PASS/);
    expect(out).toMatch(new RegExp(`Evidence: +${pin.evidence as string}`));
    expect(out).toMatch(/Upstream: +\S+ \(profile aci\)/);
    expect(out).toMatch(new RegExp(`TLS SPKI SHA-256: +${pin.tls_spki_sha256 as string}`));
    expect(out).toMatch(/TEE type: +tdx/);
    expect(out).toMatch(new RegExp(`TDX MRTD: +${aci.mrtd}`));
    expect(out).toMatch(/TCB status: +UpToDate per the archived Intel collateral/);
    expect(out).toMatch(new RegExp(`Keyset digest: +${pin.tag as string} \\(generation`));
    expect(out).toMatch(/Trust roots: +pinned vendor roots and test roots from /);
    expect(out).toMatch(/Not re-checked: +that the connection presented this TLS certificate/);
  });

  test('an edited collateral blob: ERR_AUDIT_EVIDENCE_HASH naming it', async () => {
    const d = await copyOf(t);
    const doc = await docOf(d, pinsOf(t)[0]?.evidence as string);
    const role = Object.keys(doc.blobs).find((k) => k.startsWith('tdx_collateral_')) as string;
    const path = join(d, 'evidence', doc.blobs[role] as string);
    await writeFile(path, (await readFile(path, 'utf8')).replace('UpToDate', 'OutOfDate'));
    const { code, out } = await verify(d, ...withTestRoots(t));
    expect(code).toBe(4);
    expect(out).toContain(`ERR_AUDIT_EVIDENCE_HASH: ${role} of pin`);
  });

  test('a forged pin without its collateral (the daemon had collateral): ERR_TDX_COLLATERAL_UNAVAILABLE', async () => {
    const d = await copyOf(t);
    await forgePin(d, pinsOf(t)[0]?.evidence as string, (doc) => {
      const blobs = doc.blobs as Record<string, string>;
      for (const k of Object.keys(blobs)) if (k.startsWith('tdx_collateral_')) delete blobs[k];
    });
    const { code, out } = await verify(d, ...withTestRoots(t));
    expect(code).toBe(4);
    expect(out).toMatch(/ERR_AUDIT_EVIDENCE_INVALID: the evidence [0-9a-f]{16}… does not verify as of .*: ERR_TDX_COLLATERAL_UNAVAILABLE/);
  });
});

describe('aci with SEV-SNP evidence: the report (SNP report and VCEK chain inside) archived and re-verified', () => {
  let aci: AciDeployment;
  let t: Trail;
  beforeAll(async () => {
    aci = await createAciDeployment();
    t = await trail('aci-snp', { aci }, 1);
  }, 60_000);

  test('PASS with --test-roots; --evidence prints the SNP measurement and reported TCB', async () => {
    const pin = pinsOf(t)[0] as Record<string, unknown>;
    expect(pin).toMatchObject({ profile: 'aci', kind: 'sev_snp', measurement: aci.measurement });
    expect(Object.keys((await docOf(t.dir, pin.evidence as string)).blobs)).toEqual(['report']);
    const all = await verify(t.dir, ...withTestRoots(t));
    expect(all.out).toContain('Pins:     1 attestation record(s): 1 re-verified at their own time');
    expect(all.code).toBe(0);
    const p = spawnBin('tresor-verify', ['audit', t.dir, '--evidence', pin.evidence as string, ...withTestRoots(t), '--json']);
    expect(await p.exited).toBe(0);
    const j = JSON.parse(p.stdout()) as Record<string, unknown>;
    expect(j).toMatchObject({ ok: true, evidence: pin.evidence, profile: 'aci', tee_type: 'sev_snp', measurement: aci.measurement, keyset_digest: pin.tag, freshness: 'nonce-bound' });
    const vendorOnly = await verify(t.dir);
    expect(vendorOnly.code).toBe(4);
    expect(vendorOnly.out).toMatch(/^FAIL ERR_AUDIT_EVIDENCE_INVALID/);
  });
});

describe('near without Intel collateral: pins archived, re-verified offline, TCB status unknown as the daemon saw it', () => {
  let n: NearDeployment;
  let t: Trail;
  beforeAll(async () => {
    n = await createNearDeployment();
    t = await trail('near', { near: n }, 2, rotate);
  }, 60_000);

  commonChecks(() => t, 'near', { nonceCode: 'ERR_NEAR_NONCE', pins: 2, receipts: 2 });

  test('--evidence ID: the gateway MRTD and signer, TCB status unknown, the signers', async () => {
    const pin = pinsOf(t)[0] as Record<string, unknown>;
    expect(pin).toMatchObject({ kind: 'tdx', measurement: n.mrtd, tag: n.gatewayAddress });
    expect(Object.keys((await docOf(t.dir, pin.evidence as string)).blobs)).toEqual(['report']);
    const p = spawnBin('tresor-verify', ['audit', t.dir, '--evidence', pin.evidence as string, ...withTestRoots(t)]);
    expect(await p.exited).toBe(0);
    const out = p.stdout();
    expect(out).toMatch(/Upstream: +\S+ \(profile near\)/);
    expect(out).toMatch(new RegExp(`Gateway MRTD: +${n.mrtd}`));
    expect(out).toMatch(new RegExp(`Gateway signer: +${n.gatewayAddress}`));
    expect(out).toMatch(/TCB status: +unknown \(no Intel collateral was configured, none archived\)/);
    expect(out).toMatch(new RegExp(`Signers: +gateway ${n.gatewayAddress} MRTD ${n.mrtd}`));
  });
});

describe('near with a PCCS (tdx.pccs_url): the collateral fetched is archived once and evaluated offline', () => {
  let n: NearDeployment;
  let t: Trail;
  let pccs: TestPccs;
  let served: Awaited<ReturnType<typeof mintTdxCollateral>>;
  beforeAll(async () => {
    n = await createNearDeployment();
    served = await mintTdxCollateral(n.pki, { now: new Date() });
    pccs = await startTestPccs({ ...served });
    const ca = join(scratch, 'pccs-ca.pem');
    await writeFile(ca, pccs.caPem);
    t = await trail('near-pccs', { near: n, upstream: { tdx: { pccs_url: pccs.url, pccs_ca_file: ca } } }, 1);
  }, 60_000);
  afterAll(() => pccs?.close());

  test('the pin names the collateral as fetched; PASS; --evidence prints the TCB status Intel gave', async () => {
    const pin = pinsOf(t)[0] as Record<string, unknown>;
    const doc = await docOf(t.dir, pin.evidence as string);
    expect(doc.policy).toMatchObject({ tdxCollateral: 'pccs' });
    const roles = Object.keys(doc.blobs).filter((k) => k.startsWith('tdx_collateral_'));
    expect(roles).toHaveLength(1);
    expect(JSON.parse(await readFile(join(t.dir, 'evidence', doc.blobs[roles[0] as string] as string), 'utf8'))).toEqual(served);
    const all = await verify(t.dir, ...withTestRoots(t));
    expect(all.out).toMatch(/^PASS/);
    expect(all.code).toBe(0);
    const p = spawnBin('tresor-verify', ['audit', t.dir, '--evidence', pin.evidence as string, ...withTestRoots(t)]);
    expect(await p.exited).toBe(0);
    expect(p.stdout()).toMatch(/TCB status: +UpToDate per the archived Intel collateral/);
  });
});
