import { cp, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { TEST_ROOTS_FILE } from '../../src/sim/mint/test-roots.js';
import { createRouterEvidence } from '../../src/sim/mint/router.js';
import type { SnpTestPki } from '../../src/sim/mint/snp.js';
import { mintAmdCrl } from '../helpers/amd-crl.js';
import { forgeEvidence, forgePin, readAuditRecords, rechainAudit, sha256Hex } from '../helpers/audit.js';
import { startHarness, type Harness } from '../helpers/harness.js';
import { spawnBin } from '../helpers/spawn.js';
import { auditLines, exported, startOtlpReceiver, until, type OtlpReceiver } from '../helpers/otlp-receiver.js';
import { checkPins } from '../../src/envelope/audit-pins.js';
import { collectAuditFiles } from '../../src/audit/verify.js';

/**
 * The daemon against the simulator: a completion, the router rotates its TLS key, another
 * completion. Two pins (start-up, the new key), two receipt records; then `tresor-verify audit`
 * on copies of the state, as an auditor would, with mutations.
 */
let h: Harness;
let scratch: string;
let auditDir: string;
let records: Record<string, unknown>[];
let keys: { releaseRoot: string; testRoots: string };
let daemonClosed = false;
let receiver: OtlpReceiver;

const chat = async (content: string) => {
  const res = await request(`${h.base}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'eu/tresor/gpt-oss-120b', messages: [{ role: 'user', content }] }),
  });
  await res.body.dump();
  expect(res.statusCode).toBe(200);
};
const ofType = (t: string) => records.filter((r) => r.type === t);

let otlpOut: string;
let crlFile: string;
beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'tresor-evidence-e2e-'));
  otlpOut = join(scratch, 'collector.jsonl');
  receiver = await startOtlpReceiver(otlpOut);
  // AMD's CRL configured (snp.crl_file): issued by the simulator's test ARK, revoking nothing of its chain.
  const evidence = await createRouterEvidence();
  crlFile = join(scratch, 'amd.crl');
  await writeFile(crlFile, await mintAmdCrl(evidence.pki as SnpTestPki, { serials: ['0abc'] }));
  h = await startHarness({ evidence, upstream: { snp: { crl_file: crlFile } }, config: { otlp: { endpoint: receiver.url, protocol: 'http/json', interval_ms: 50 } } });
  await chat('before the rotation');
  await h.sim.rotateTlsKey();
  await new Promise((r) => setTimeout(r, 100));
  await chat('after the rotation');
  const state = join(h.dir, 'state');
  for (let t = Date.now(); (await readAuditRecords(state)).filter((r) => r.type === 'receipt').length < 2; ) {
    if (Date.now() - t > 15_000) throw new Error('the two receipt records were not written');
    await new Promise((r) => setTimeout(r, 50));
  }
  const lines = await auditLines(join(state, 'audit'));
  await until('the export of every record', async () => {
    const sent = new Set([...(await exported(otlpOut)).values()].flat());
    return lines.every((l) => sent.has(l));
  });
  await h.daemon.close(500);
  daemonClosed = true;
  await receiver.close();
  // What an auditor is handed: the audit directory and the public keys.
  auditDir = join(scratch, 'audit');
  await cp(join(state, 'audit'), auditDir, { recursive: true });
  keys = { releaseRoot: join(scratch, 'release-root.pub'), testRoots: join(scratch, TEST_ROOTS_FILE) };
  await cp(join(h.dir, 'release-root.pub'), keys.releaseRoot);
  await cp(join(h.dir, TEST_ROOTS_FILE), keys.testRoots);
  records = await readAuditRecords(scratch);
}, 60_000);
afterAll(async () => {
  if (h && !daemonClosed) await h.daemon.close(500);
  await h?.sim.close();
  if (h) await rm(h.dir, { recursive: true, force: true });
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

async function verify(dir: string, ...flags: string[]) {
  const p = spawnBin('tresor-verify', ['audit', dir, ...flags]);
  const code = await p.exited;
  return { code, out: p.stdout() };
}
const withRoots = () => ['--release-root', keys.releaseRoot, '--test-roots', keys.testRoots];

/** A copy of the audit directory to mutate. */
async function copy(): Promise<string> {
  const d = await mkdtemp(join(scratch, 'copy-'));
  await cp(auditDir, d, { recursive: true });
  return d;
}

const sha = sha256Hex;

describe('every receipt carries the evidence that made its connection trusted (tresor-verify audit DIR)', () => {
  test('one attestation record per pin, before the receipts that name it; each receipt names its own pin', () => {
    const pins = ofType('attestation');
    const receipts = ofType('receipt');
    expect(pins).toHaveLength(2);
    expect(pins.map((p) => p.reason)).toEqual(['startup', 'connection']);
    for (const p of pins) {
      expect(p).toMatchObject({ upstream: 'tresor', profile: 'tresor', kind: 'snp', measurement: h.evidence.measurement, freshness: 'nonce-bound', channel: 'bound', test_roots: true, bundle_version: expect.any(Number) });
      expect(p.evidence).toMatch(/^[0-9a-f]{64}$/);
    }
    expect(pins[0]?.tls_spki_sha256).not.toBe(pins[1]?.tls_spki_sha256);
    receipts.forEach((r, i) => {
      const a = r.attestation as Record<string, unknown>;
      expect(a.evidence).toBe(pins[i]?.evidence);
      expect(a.tls_spki_sha256).toBe(pins[i]?.tls_spki_sha256);
      expect(r.seq as number).toBeGreaterThan(pins[i]?.seq as number);
    });
  });

  test('the attestation records reach the OTLP collector as tresor.attestation events, body unchanged', async () => {
    type Lr = { eventName?: string; body: { stringValue: string }; attributes: { key: string; value: { stringValue?: string } }[] };
    const text = await readFile(otlpOut, 'utf8');
    const logRecords = text.split('\n').filter(Boolean).flatMap((l) => (JSON.parse(l) as { resourceLogs: { scopeLogs: { logRecords: Lr[] }[] }[] }).resourceLogs.flatMap((r) => r.scopeLogs.flatMap((sl) => sl.logRecords)));
    // Audit records only (the evidence and receipts sent before them carry no tresor.audit.type).
    const attestations = logRecords.filter((lr) => lr.attributes.some((a) => a.key === 'tresor.audit.type' && a.value.stringValue === 'attestation'));
    const lines = (await auditLines(auditDir)).filter((l) => l.includes('"type":"attestation"'));
    expect(lines).toHaveLength(2);
    expect([...new Set(attestations.map((lr) => lr.body.stringValue))]).toEqual(lines);
    for (const lr of attestations) {
      expect(lr.eventName).toBe('tresor.attestation');
      expect(lr.attributes.find((a) => a.key === 'tresor.audit.type')?.value.stringValue).toBe('attestation');
    }
  });

  test('the evidence is archived once per part: the two pins share one trust bundle blob and one CRL blob; 0600 files', async () => {
    const dir = join(auditDir, 'evidence');
    const files = await readdir(dir);
    const docs = await Promise.all(ofType('attestation').map(async (p) => JSON.parse(await readFile(join(dir, p.evidence as string), 'utf8')) as { blobs: Record<string, string>; nonce: string; tls_chain_der_b64: string[]; policy: Record<string, unknown> }));
    expect(docs[0]?.blobs.trust_bundle).toBe(docs[1]?.blobs.trust_bundle);
    expect(docs[0]?.blobs.envelope).not.toBe(docs[1]?.blobs.envelope);
    // AMD's CRL as the daemon used it, and the allowed bundle location as policy data.
    expect(docs[0]?.blobs.snp_crl).toBe(sha(await readFile(crlFile)));
    expect(docs[1]?.blobs.snp_crl).toBe(docs[0]?.blobs.snp_crl);
    expect(docs[0]?.policy).toMatchObject({ snpCrl: true, trustBundleLocation: h.evidence.bundleUrl });
    // 2 pin documents + 2 envelopes + 1 bundle + 1 CRL.
    expect(files.sort()).toEqual([...new Set(docs.flatMap((d, i) => [ofType('attestation')[i]?.evidence as string, ...Object.values(d.blobs)]))].sort());
    expect(files).toHaveLength(6);
    for (const d of docs) {
      expect(d.nonce).toMatch(/^[0-9a-f]{64}$/);
      expect(d.tls_chain_der_b64.length).toBeGreaterThan(0);
    }
    for (const f of files) {
      const s = await stat(join(dir, f));
      expect(s.mode & 0o777).toBe(0o600);
      // Exactly the bytes received: each file hashes to its name.
      expect(sha(await readFile(join(dir, f)))).toBe(f);
    }
  });

  test('with the release root (and the test roots, given explicitly): PASS, every pin re-verified at its own time and named', async () => {
    const { code, out } = await verify(auditDir, ...withRoots());
    expect(out).toMatch(/^PASS/);
    expect(code).toBe(0);
    expect(out).toContain('Pins:     2 attestation record(s): 2 re-verified at their own time, 0 failed');
    expect(out).toContain('Linked:   2 receipt record(s) name their pin and agree with it (2 also checked against the router_attestation in their archived receipt, 0 of them issued after a key rotation); 0 name no archived pin');
    for (const p of ofType('attestation')) expect(out).toContain(`pin ${p.evidence as string} seq ${p.seq as number} tresor tresor ${p.verified_at as string}: verified`);
  });

  test('without --release-root the evidence checks are reported as skipped; without --test-roots the simulator evidence fails', async () => {
    const plain = await verify(auditDir);
    expect(plain.code).toBe(0);
    expect(plain.out).toContain('0 re-verified at their own time, 0 failed, 2 checked against their hashes only');
    expect(plain.out).toContain('no --release-root');
    expect(plain.out).toMatch(/: skipped\n/);
    const vendorOnly = await verify(auditDir, '--release-root', keys.releaseRoot);
    expect(vendorOnly.code).toBe(4);
    expect(vendorOnly.out).toMatch(/^FAIL ERR_AUDIT_EVIDENCE_INVALID/);
    expect(vendorOnly.out).toContain('ERR_BUNDLE_AMD_ARK_NOT_PINNED');
  });

  test('an edited evidence blob: ERR_AUDIT_EVIDENCE_HASH', async () => {
    const d = await copy();
    const doc = JSON.parse(await readFile(join(d, 'evidence', ofType('attestation')[0]?.evidence as string), 'utf8')) as { blobs: { envelope: string } };
    const path = join(d, 'evidence', doc.blobs.envelope);
    await writeFile(path, (await readFile(path, 'utf8')).replace('"workload":"router"', '"workload":"router "'));
    const { code, out } = await verify(d);
    expect(code).toBe(4);
    expect(out).toMatch(/break: audit-\d{8}-0001\.jsonl:1 ERR_AUDIT_EVIDENCE_HASH: envelope of pin/);
  });

  test('a deleted pin document: ERR_AUDIT_EVIDENCE_MISSING', async () => {
    const d = await copy();
    await rm(join(d, 'evidence', ofType('attestation')[1]?.evidence as string));
    const { code, out } = await verify(d, ...withRoots());
    expect(code).toBe(4);
    expect(out).toMatch(/^FAIL ERR_AUDIT_EVIDENCE_MISSING/);
  });

  test("a receipt record's attestation summary changed (chain re-hashed): ERR_AUDIT_ATTESTATION_MISMATCH", async () => {
    const d = await copy();
    await rechainAudit(d, (r) => {
      if (r.type === 'receipt') (r.attestation as Record<string, unknown>).measurement = '00'.repeat(48);
    });
    const { code, out } = await verify(d);
    expect(code).toBe(4);
    expect(out).toMatch(/^FAIL ERR_AUDIT_ATTESTATION_MISMATCH/);
    expect(out).toContain("the receipt record's attestation differs from its pin");
    expect(out).not.toContain('ERR_AUDIT_CHAIN_BROKEN');
  });

  test('a receipt pointed at another pin (chain re-hashed): ERR_AUDIT_ATTESTATION_MISMATCH on the TLS key', async () => {
    const d = await copy();
    const [first, second] = ofType('attestation');
    await rechainAudit(d, (r) => {
      const a = r.attestation as Record<string, unknown> | undefined;
      if (r.type === 'receipt' && a && a.evidence === second?.evidence) a.evidence = first?.evidence;
    });
    const { code, out } = await verify(d, ...withRoots());
    expect(code).toBe(4);
    expect(out).toMatch(/ERR_AUDIT_ATTESTATION_MISMATCH: the receipt record's attestation differs from its pin [0-9a-f]{16}… \(seq \d+\) in tls_spki_sha256/);
  });

  test('an attestation record that says other than its evidence proves (chain re-hashed): ERR_AUDIT_ATTESTATION_MISMATCH with the release root', async () => {
    const d = await copy();
    await rechainAudit(d, (r) => {
      if (r.type === 'attestation') r.expires_at = '2099-01-01T00:00:00.000Z';
    });
    expect((await verify(d)).code).toBe(0);
    const { code, out } = await verify(d, ...withRoots());
    expect(code).toBe(4);
    expect(out).toContain('ERR_AUDIT_ATTESTATION_MISMATCH: the attestation record says other than its evidence');
  });

  test('forged evidence that hashes right (another nonce, renamed, records and chain rewritten): ERR_AUDIT_EVIDENCE_INVALID', async () => {
    const d = await copy();
    await forgePin(d, ofType('attestation')[0]?.evidence as string, (doc) => {
      doc.nonce = 'ab'.repeat(32);
    });
    const { code, out } = await verify(d, ...withRoots());
    expect(code).toBe(4);
    expect(out).toMatch(/ERR_AUDIT_EVIDENCE_INVALID: the evidence [0-9a-f]{16}… does not verify as of .*: ERR_ATTEST_NONCE_MISMATCH/);
  });

  test('--evidence ID prints one pin verified again at its own time, like tresor-verify attest', async () => {
    const pin = ofType('attestation')[1] as Record<string, unknown>;
    const text = await verify(auditDir, '--evidence', pin.evidence as string, ...withRoots());
    expect(text.code).toBe(0);
    expect(text.out).toMatch(/^PASS\n/);
    expect(text.out).toContain(`Evidence:              ${pin.evidence as string}`);
    expect(text.out).toContain(`TLS SPKI SHA-256:      ${pin.tls_spki_sha256 as string}`);
    expect(text.out).toContain(`SNP MEASUREMENT:       ${h.evidence.measurement}`);
    expect(text.out).toContain('Freshness:             nonce-bound');
    expect(text.out).toContain(`Verified at:           ${pin.verified_at as string}`);
    // The CRL is archived and re-checked; what stays unchecked is said.
    expect(text.out).not.toContain("AMD's CRL");
    expect(text.out).toMatch(/Not re-checked: +that the bundle was fetched from .*; bundle versions the daemon accepted before this log's first pin/);
    const json = await verify(auditDir, '--evidence', pin.evidence as string, ...withRoots(), '--json');
    expect(JSON.parse(json.out)).toMatchObject({ ok: true, evidence: pin.evidence, upstream: 'tresor', tls_spki_sha256: pin.tls_spki_sha256, freshness: 'nonce-bound', test_roots: true });
    const missing = await verify(auditDir, '--evidence', 'f'.repeat(64), ...withRoots());
    expect(missing.code).toBe(4);
    expect(missing.out).toMatch(/^FAIL ERR_AUDIT_EVIDENCE_MISSING/);
    const noRoot = await verify(auditDir, '--evidence', pin.evidence as string);
    expect(noRoot.code).toBe(2);
    expect(noRoot.out).toMatch(/^FAIL ERR_USAGE_BAD_FLAG: --evidence needs --release-root/);
  });
});

type ExportedRecord = { eventName?: string; body: { stringValue: string }; attributes: { key: string; value: { stringValue?: string } }[] };
type ExportRequest = { resourceLogs: { scopeLogs: { logRecords: ExportedRecord[] }[] }[] };
const attr = (lr: ExportedRecord, key: string) => lr.attributes.find((a) => a.key === key)?.value.stringValue;

/** The collector's export, each log record passed through `edit` (undefined: deleted), written to a new file. */
async function editExport(edit: (lr: ExportedRecord) => ExportedRecord | undefined): Promise<string> {
  const reqs = (await readFile(otlpOut, 'utf8')).split('\n').filter(Boolean).map((l) => JSON.parse(l) as ExportRequest);
  for (const sl of reqs.flatMap((r) => r.resourceLogs.flatMap((rl) => rl.scopeLogs))) sl.logRecords = sl.logRecords.map(edit).filter((lr): lr is ExportedRecord => lr !== undefined);
  const f = join(await mkdtemp(join(scratch, 'export-')), 'collector.jsonl');
  await writeFile(f, `${reqs.map((r) => JSON.stringify(r)).join('\n')}\n`);
  return f;
}

describe("the collector's export carries the evidence and the receipts: tresor-verify audit --otlp-json re-verifies them offline", () => {
  let jwks: string;
  beforeAll(async () => {
    jwks = join(scratch, 'jwks.json');
    await writeFile(jwks, JSON.stringify(h.sim.receipts.jwks(h.sim.faults)));
  });
  const otlp = (file: string, ...flags: string[]) => verify('--otlp-json', file, ...flags);
  const all = async () => (await readFile(otlpOut, 'utf8')).split('\n').filter(Boolean).flatMap((l) => (JSON.parse(l) as ExportRequest).resourceLogs.flatMap((r) => r.scopeLogs.flatMap((sl) => sl.logRecords)));

  test('each blob of a pin (once), and each archived receipt, travel before the record that names them', async () => {
    const lrs = await all();
    const evidence = lrs.filter((lr) => lr.eventName === 'tresor.evidence');
    // 2 pin documents + 2 envelopes + 1 shared bundle + 1 shared CRL, each sent once, each body its bytes in base64.
    expect(evidence.map((lr) => attr(lr, 'tresor.evidence.sha256')).sort()).toEqual((await readdir(join(auditDir, 'evidence'))).sort());
    for (const lr of evidence) expect(sha(Buffer.from(lr.body.stringValue, 'base64'))).toBe(attr(lr, 'tresor.evidence.sha256'));
    const at = (pred: (lr: ExportedRecord) => boolean) => lrs.findIndex(pred);
    for (const p of ofType('attestation')) {
      const doc = JSON.parse(await readFile(join(auditDir, 'evidence', p.evidence as string), 'utf8')) as { blobs: Record<string, string> };
      const record = at((lr) => attr(lr, 'tresor.audit.type') === 'attestation' && lr.body.stringValue.includes(p.evidence as string));
      for (const id of [p.evidence as string, ...Object.values(doc.blobs)]) expect(at((lr) => attr(lr, 'tresor.evidence.sha256') === id)).toBeLessThan(record);
    }
    const receipts = ofType('receipt');
    expect(receipts.every((r) => typeof r.receipt_jws_sha256 === 'string')).toBe(true);
    for (const r of receipts) {
      const jws = lrs.find((lr) => lr.eventName === 'tresor.receipt' && attr(lr, 'tresor.receipt.jws_sha256') === r.receipt_jws_sha256);
      expect(sha(jws?.body.stringValue as string)).toBe(r.receipt_jws_sha256);
      const record = at((lr) => attr(lr, 'tresor.audit.type') === 'receipt' && lr.body.stringValue.includes(`"receipt_jws_sha256":"${r.receipt_jws_sha256 as string}"`));
      expect(record).toBeGreaterThan(-1);
      expect(lrs.indexOf(jws as ExportedRecord)).toBeLessThan(record);
    }
  });

  test('with the keys: PASS, every pin re-verified at its own time and every receipt re-verified, as for the state dir', async () => {
    const { code, out } = await otlp(otlpOut, ...withRoots(), '--jwks-file', jwks);
    expect(out).toMatch(/^PASS/);
    expect(code).toBe(0);
    expect(out).toContain('Receipts: 2 archived, 2 verified records re-verified offline');
    expect(out).toContain('Pins:     2 attestation record(s): 2 re-verified at their own time, 0 failed');
    expect(out).toContain('Linked:   2 receipt record(s) name their pin and agree with it (2 also checked against the router_attestation in their archived receipt, 0 of them issued after a key rotation); 0 name no archived pin');
    for (const p of ofType('attestation')) expect(out).toContain(`pin ${p.evidence as string} seq ${p.seq as number} tresor tresor ${p.verified_at as string}: verified`);
  });

  test('without --test-roots the simulator evidence fails: ERR_AUDIT_EVIDENCE_INVALID', async () => {
    const { code, out } = await otlp(otlpOut, '--release-root', keys.releaseRoot);
    expect(code).toBe(4);
    expect(out).toMatch(/^FAIL ERR_AUDIT_EVIDENCE_INVALID/);
    expect(out).toContain('ERR_BUNDLE_AMD_ARK_NOT_PINNED');
  });

  test('an evidence blob edited in the export: ERR_AUDIT_EVIDENCE_HASH', async () => {
    const doc = JSON.parse(await readFile(join(auditDir, 'evidence', ofType('attestation')[0]?.evidence as string), 'utf8')) as { blobs: { envelope: string } };
    const f = await editExport((lr) => {
      if (attr(lr, 'tresor.evidence.sha256') !== doc.blobs.envelope) return lr;
      const text = Buffer.from(lr.body.stringValue, 'base64').toString('utf8');
      expect(text).toContain('"workload":"router"');
      return { ...lr, body: { stringValue: Buffer.from(text.replace('"workload":"router"', '"workload":"router "')).toString('base64') } };
    });
    const { code, out } = await otlp(f, ...withRoots());
    expect(code).toBe(4);
    expect(out).toMatch(/^FAIL ERR_AUDIT_EVIDENCE_HASH/);
    expect(out).toMatch(/break: collector\.jsonl:\d+ ERR_AUDIT_EVIDENCE_HASH: envelope of pin/);
  });

  test('an evidence log record deleted from the export: ERR_AUDIT_EVIDENCE_MISSING', async () => {
    const f = await editExport((lr) => (attr(lr, 'tresor.evidence.sha256') === ofType('attestation')[1]?.evidence ? undefined : lr));
    const { code, out } = await otlp(f, ...withRoots());
    expect(code).toBe(4);
    expect(out).toMatch(/^FAIL ERR_AUDIT_EVIDENCE_MISSING/);
  });

  test('a receipt JWS edited in the export: ERR_AUDIT_RECEIPT_MISSING with --jwks-file, as an edited archive in a state dir', async () => {
    const first = ofType('receipt')[0]?.receipt_jws_sha256 as string;
    const f = await editExport((lr) => (attr(lr, 'tresor.receipt.jws_sha256') === first ? { ...lr, body: { stringValue: lr.body.stringValue.replace(/^([A-Za-z0-9_-]+)\./, '$1x.') } } : lr));
    const { code, out } = await otlp(f, ...withRoots(), '--jwks-file', jwks);
    expect(code).toBe(4);
    expect(out).toMatch(/^FAIL ERR_AUDIT_RECEIPT_MISSING/);
    expect(out).toContain(`the archived receipt ${first.slice(0, 16)}… is not in the archive`);
  });
});

describe('what a tresor pin archives beyond the envelope: the CRL, the bundle location; what the log shows across pins', () => {
  test("a CRL revoking the simulator's ASK, stored under its own hash and named by both pins: ERR_AUDIT_EVIDENCE_INVALID (ERR_CHAIN_REVOKED)", async () => {
    const d = await copy();
    const pki = h.evidence.pki as SnpTestPki;
    const old = sha(await readFile(crlFile));
    await forgeEvidence(d, old, Buffer.from(await mintAmdCrl(pki, { serials: [pki.ask.parsed.serialNumber] })));
    const { code, out } = await verify(d, ...withRoots());
    expect(code).toBe(4);
    expect(out).toMatch(/^FAIL ERR_AUDIT_EVIDENCE_INVALID/);
    expect(out).toContain('ERR_CHAIN_REVOKED');
    expect(out).toContain('2 failed');
  });

  test("a pin document whose bundle location is not the envelope's trust_bundle_url: ERR_AUDIT_EVIDENCE_INVALID (ERR_BUNDLE_URL_NOT_ALLOWED)", async () => {
    const d = await copy();
    const old = ofType('attestation')[0]?.evidence as string;
    const doc = JSON.parse(await readFile(join(d, 'evidence', old), 'utf8')) as { policy: Record<string, unknown> };
    doc.policy.trustBundleLocation = 'https://bundles.example/tresor.jws';
    await forgeEvidence(d, old, JSON.stringify(doc));
    const { code, out } = await verify(d, ...withRoots());
    expect(code).toBe(4);
    expect(out).toMatch(/ERR_AUDIT_EVIDENCE_INVALID: the evidence [0-9a-f]{16}… does not verify as of .*: ERR_BUNDLE_URL_NOT_ALLOWED/);
  });

  test('a trust bundle version going down between two pins of one upstream (chain re-hashed): ERR_AUDIT_BUNDLE_ROLLBACK', async () => {
    const d = await copy();
    const first = ofType('attestation')[0] as Record<string, unknown>;
    await rechainAudit(d, (r) => {
      if (r.evidence === first.evidence) r.bundle_version = (first.bundle_version as number) + 1;
      const a = r.attestation as Record<string, unknown> | undefined;
      if (a && a.evidence === first.evidence) a.bundle_version = (first.bundle_version as number) + 1;
    });
    const { code, out } = await verify(d);
    expect(code).toBe(4);
    expect(out).toMatch(/^FAIL ERR_AUDIT_BUNDLE_ROLLBACK/);
    expect(out).toMatch(new RegExp(`ERR_AUDIT_BUNDLE_ROLLBACK: the pin of upstream tresor at seq \\d+ was verified against trust bundle version ${first.bundle_version as number}, older than version ${(first.bundle_version as number) + 1} of its pin at seq ${first.seq as number}`));
  });

  test("the first receipt record pointed at the second pin, that pin's record moved before it and the summary rewritten to match (chain re-hashed): the signed router_attestation binds the first pin's key", async () => {
    const d = await copy();
    const [first, second] = ofType('attestation') as Record<string, unknown>[];
    // Move the second pin's record to just before the first receipt record and renumber: the order check passes.
    const file = (await readdir(d)).find((f) => /^audit-.*\.jsonl$/.test(f)) as string;
    const recs = (await readFile(join(d, file), 'utf8')).split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
    const moved = recs.filter((r) => r.evidence !== second?.evidence);
    moved.splice(moved.findIndex((r) => r.type === 'receipt'), 0, recs.find((r) => r.evidence === second?.evidence) as Record<string, unknown>);
    moved.forEach((r, i) => (r.seq = i + 1));
    await writeFile(join(d, file), `${moved.map((r) => JSON.stringify(r)).join('\n')}\n`);
    await rechainAudit(d, (r) => {
      const a = r.attestation as Record<string, unknown> | undefined;
      if (r.type === 'receipt' && a && a.evidence === first?.evidence) Object.assign(a, { evidence: second?.evidence, tls_spki_sha256: second?.tls_spki_sha256, bundle_version: second?.bundle_version });
    });
    const { code, out } = await verify(d);
    expect(code).toBe(4);
    expect(out).toMatch(/^FAIL ERR_AUDIT_ATTESTATION_MISMATCH/);
    expect(out).toContain(`the router_attestation in the receipt's signed JWS binds TLS key ${(first?.tls_spki_sha256 as string).slice(0, 16)}…, neither the key ${(second?.tls_spki_sha256 as string).slice(0, 16)}… of the pin`);
    expect(out).toContain("that pin was not the connection's");
  });
});

describe('audit.archive_evidence: false', () => {
  test('pins are still recorded, without evidence; receipts name none; the verifier counts them as not archived', async () => {
    const off = await startHarness({ config: { audit: { archive_evidence: false } } });
    try {
      const res = await request(`${off.base}/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'eu/tresor/gpt-oss-120b', messages: [{ role: 'user', content: 'no archive' }] }) });
      await res.body.dump();
      const state = join(off.dir, 'state');
      await until('the receipt record', async () => (await readAuditRecords(state)).some((r) => r.type === 'receipt'));
      const recs = await readAuditRecords(state);
      expect(recs.find((r) => r.type === 'attestation')).toMatchObject({ evidence: null, tls_spki_sha256: off.sim.spkiSha256 });
      expect((recs.find((r) => r.type === 'receipt')?.attestation as Record<string, unknown>).evidence).toBeUndefined();
      await expect(stat(join(state, 'audit', 'evidence'))).rejects.toMatchObject({ code: 'ENOENT' });
      const report = await checkPins(await collectAuditFiles([join(state, 'audit')]), {});
      expect(report.breaks).toEqual([]);
      expect(report.pins.map((p) => p.result)).toEqual(['not archived']);
      expect(report.receipts).toEqual({ matched: 0, unlinked: 1, cross_checked: 0, rotated: 0 });
    } finally {
      await off.close();
    }
  });
});

describe('receipts off on every upstream', () => {
  test('there is no audit log, so no pin is recorded or archived (docs/wire.md §7.2): the attested request still flows', async () => {
    const off = await startHarness({ upstream: { receipts: { mode: 'off' } } });
    try {
      const res = await request(`${off.base}/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'eu/tresor/gpt-oss-120b', messages: [{ role: 'user', content: 'no receipts' }] }) });
      await res.body.dump();
      expect(res.statusCode).toBe(200);
      expect(res.headers['x-tresor-attestation']).toMatch(/^verified; nonce-bound; channel: bound/);
      await expect(stat(join(off.dir, 'state', 'audit'))).rejects.toMatchObject({ code: 'ENOENT' });
    } finally {
      await off.close();
    }
  });
});
