import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { spawnBin } from '../helpers/spawn.js';
import { createNearDeployment } from '../../src/sim/mint/near.js';
import { toPem } from '../../src/x509/certificate.js';
import { mintTdxCollateral } from '../../src/sim/mint/tdx-collateral.js';

const VECTOR = new URL('../vectors/nearai-chat-signature-example.json', import.meta.url).pathname;
const vec = JSON.parse(readFileSync(VECTOR, 'utf8'));
let dir: string;
const f = (n: string) => join(dir, n);

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tresor-near-cli-'));
  await writeFile(f('sse'), (vec.response_sse_lines as string[]).map((l) => `${l}\n\n`).join(''));
  await writeFile(f('bare.json'), JSON.stringify(vec.signature_response));
  await writeFile(f('forged.json'), JSON.stringify({ ...vec.signature_response, signing_address: `0x${'12'.repeat(20)}` }));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function run(args: string[], stdin?: string) {
  const p = spawnBin('tresor-verify', ['near-signature', ...args]);
  p.child.stdin?.end(stdin ?? '');
  const code = await p.exited;
  return { code, out: p.stdout() };
}

describe('tresor-verify near-signature', () => {
  test('the real NEAR example verifies, with the response hash recomputed from the raw SSE bytes', async () => {
    const r = await run([VECTOR, '--response-body', f('sse')]);
    expect(r.code).toBe(0);
    expect(r.out).toContain('PASS\n');
    expect(r.out).toMatch(/Signer:\s+0x319f1b8bb3b723a5d098ffb67005bdf7bb579aca/);
    expect(r.out).toMatch(/Response hash:\s+match aae79d9de9c46f0a9c478481ceb84df5742a88067a6ab8bac9e98664d712d58f/);
    const j = await run(['-', '--json'], JSON.stringify(vec.signature_response));
    expect(j.code).toBe(0);
    expect(JSON.parse(j.out)).toMatchObject({ ok: true, signer: '0x319f1b8bb3b723a5d098ffb67005bdf7bb579aca', checked: { response: false } });
  });
  test('a different signer address fails (exit 4); a wrong body fails (exit 4); garbage is malformed (exit 3)', async () => {
    const a = await run([f('forged.json')]);
    expect(a.code).toBe(4);
    expect(a.out).toMatch(/^FAIL ERR_NEAR_ADDRESS_MISMATCH: /);
    const b = await run([f('bare.json'), '--response-body', VECTOR]);
    expect(b.code).toBe(4);
    expect(b.out).toMatch(/^FAIL ERR_NEAR_RESPONSE_HASH: /);
    const c = await run([f('sse')]);
    expect(c.code).toBe(3);
    expect(c.out).toMatch(/^FAIL ERR_NEAR_MALFORMED: /);
  });
});

describe('tresor-verify near-signature --attestation: the signer must be attested by the report', () => {
  test('a simulated deployment: match with the model node; an unattested signer fails (exit 4); flags go together (exit 2)', async () => {
    const d = await createNearDeployment();
    const nonce = 'a5'.repeat(32);
    const spki = '3c'.repeat(32);
    await writeFile(f('report.json'), JSON.stringify(d.report(spki, nonce, 'sim-near/model')));
    await writeFile(f('intel-root.pem'), toPem(d.pki.root));
    const hashes = { requestSha256: '11'.repeat(32), responseSha256: '22'.repeat(32) };
    await writeFile(f('sig.json'), JSON.stringify(d.signature(hashes)));
    const att = ['--attestation', f('report.json'), '--nonce', nonce, '--spki', spki, '--intel-root', f('intel-root.pem')];
    const ok = await run([f('sig.json'), ...att]);
    expect(ok.out).toMatch(/Attested address:\s+match: the model sim-near\/model \(TDX MRTD [0-9a-f]{96}, TCB unknown: no --collateral\)/);
    expect(ok.code).toBe(0);
    const j = await run([f('sig.json'), ...att, '--json']);
    expect(JSON.parse(j.out)).toMatchObject({ ok: true, signer: d.modelAddress, checked: { attestedAddress: true }, attested: { role: 'model', mrtd: d.mrtd } });
    d.faults.unattestedSigner = true;
    await writeFile(f('sig2.json'), JSON.stringify(d.signature(hashes)));
    const bad = await run([f('sig2.json'), ...att]);
    expect(bad.code).toBe(4);
    expect(bad.out).toMatch(/^FAIL ERR_NEAR_ATTESTED_ADDRESS: /);
    // The pinned Intel root does not anchor the simulator's quotes; another TLS key is not the one bound.
    expect((await run([f('sig.json'), '--attestation', f('report.json'), '--nonce', nonce])).out).toMatch(/^FAIL ERR_CHAIN_UNTRUSTED: /);
    expect((await run([f('sig.json'), ...att.slice(0, 4), '--spki', '00'.repeat(32), '--intel-root', f('intel-root.pem')])).out).toMatch(/^FAIL ERR_NEAR_REPORT_DATA: /);
    const usage = await run([f('sig.json'), '--attestation', f('report.json')]);
    expect(usage.code).toBe(2);
  });
  test('--collateral (as tresor-verify tdx): the TCB status of each quote is evaluated and shown; stale collateral, a refused status and --allow-tcb-status', async () => {
    const d = await createNearDeployment();
    const nonce = 'b6'.repeat(32);
    await writeFile(f('report-c.json'), JSON.stringify(d.report('3c'.repeat(32), nonce, 'sim-near/model')));
    await writeFile(f('intel-root-c.pem'), toPem(d.pki.root));
    await writeFile(f('sig-c.json'), JSON.stringify(d.signature({ requestSha256: '11'.repeat(32), responseSha256: '22'.repeat(32) })));
    const outOfDate = (i: Record<string, unknown>) => void ((i.tcbLevels as { tcb: { pcesvn: number } }[])[0] as { tcb: { pcesvn: number } }).tcb.pcesvn++;
    await writeFile(f('fresh.json'), JSON.stringify(await mintTdxCollateral(d.pki, { now: new Date() })));
    await writeFile(f('stale.json'), JSON.stringify(await mintTdxCollateral(d.pki, { now: new Date(Date.now() - 60 * 86_400_000) })));
    await writeFile(f('ood.json'), JSON.stringify(await mintTdxCollateral(d.pki, { now: new Date(), editTcbInfo: outOfDate })));
    const att = [f('sig-c.json'), '--attestation', f('report-c.json'), '--nonce', nonce, '--spki', '3c'.repeat(32), '--intel-root', f('intel-root-c.pem')];
    const ok = await run([...att, '--collateral', f('fresh.json')]);
    expect(ok.out).toMatch(/Attested address:\s+match: the model sim-near\/model \(TDX MRTD [0-9a-f]{96}, TCB UpToDate\)/);
    expect(ok.code).toBe(0);
    expect(JSON.parse((await run([...att, '--collateral', f('fresh.json'), '--json'])).out)).toMatchObject({ ok: true, attested: { tcb_status: 'UpToDate' } });
    const stale = await run([...att, '--collateral', f('stale.json')]);
    expect(stale.out).toMatch(/^FAIL ERR_TDX_COLLATERAL_STALE: /);
    expect(stale.code).toBe(4);
    const refused = await run([...att, '--collateral', f('ood.json')]);
    expect(refused.out).toMatch(/^FAIL ERR_POLICY_TDX_TCB_STATUS: /);
    expect(refused.code).toBe(5);
    expect((await run([...att, '--collateral', f('ood.json'), '--allow-tcb-status', 'UpToDate', 'OutOfDate'])).out).toMatch(/TCB OutOfDate\)/);
    expect((await run([f('sig-c.json'), '--collateral', f('fresh.json')])).code).toBe(2);
  });
});
