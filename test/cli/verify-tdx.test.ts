import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { spawnBin } from '../helpers/spawn.js';

const QUOTE = new URL('../vectors/tdx-tinfoil-quote-v4.bin', import.meta.url).pathname;
const bytes = readFileSync(QUOTE);
let dir: string;
const f = (n: string) => join(dir, n);

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tresor-tdx-cli-'));
  await writeFile(f('quote.hex'), bytes.toString('hex'));
  const tampered = Buffer.from(bytes);
  tampered[48 + 136] = (tampered[48 + 136] as number) ^ 1; // MRTD
  await writeFile(f('tampered.bin'), tampered);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function run(args: string[]) {
  const p = spawnBin('tresor-verify', ['tdx', ...args]);
  const code = await p.exited;
  return { code, out: p.stdout() };
}

describe('tresor-verify tdx', () => {
  test('the real quote verifies to the Intel root; registers are printed; TCB status is unknown', async () => {
    const r = await run([QUOTE, '--at', '2026-01-01T00:00:00Z']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^PASS\n/);
    expect(r.out).toMatch(/MRTD:\s+7357a10d2e2724dffe68813e3cc4cfcde6814d749f2fb62e3953e54f6e0b50a219786afe2cd478f684b52c61837e1114\n/);
    expect(r.out).toMatch(/TCB status:\s+unknown/);
    const j = await run([f('quote.hex'), '--json', '--at', '2026-01-01T00:00:00Z']);
    expect(j.code).toBe(0);
    const o = JSON.parse(j.out);
    expect(o).toMatchObject({ ok: true, version: 4, tee_type: 'tdx', tcb_status: 'unknown', quote_length: 4936 });
    expect(o.mrtd).toBe(bytes.subarray(48 + 136, 48 + 184).toString('hex'));
    expect(o.pck_chain).toHaveLength(3);
  });
  test('tampered (exit 4), expired chain (exit 4), malformed (exit 3), bad --at (exit 2)', async () => {
    const t = await run([f('tampered.bin'), '--at', '2026-01-01T00:00:00Z']);
    expect(t.code).toBe(4);
    expect(t.out).toMatch(/^FAIL ERR_TDX_QUOTE_SIGNATURE: /);
    const e = await run([QUOTE, '--at', '2040-01-01T00:00:00Z']);
    expect(e.code).toBe(4);
    expect(e.out).toMatch(/^FAIL ERR_CHAIN_EXPIRED: /);
    const m = await run([f('quote.hex').replace('quote.hex', 'tampered.bin'), '--at', 'not-a-time']);
    expect(m.code).toBe(2);
    const short = f('short.bin');
    await writeFile(short, bytes.subarray(0, 600));
    const s = await run([short]);
    expect(s.code).toBe(3);
    expect(s.out).toMatch(/^FAIL ERR_TDX_TRUNCATED: /);
  });

  test('--collateral: the real dcap-qvl quote and its PCCS collateral print the TCB status and advisories', async () => {
    const q = new URL('../vectors/tdx-dcap-qvl-quote-2025-06.bin', import.meta.url).pathname;
    const c = new URL('../vectors/tdx-dcap-qvl-quote-2025-06.collateral.json', import.meta.url).pathname;
    const r = await run([q, '--collateral', c, '--at', '2025-07-01T00:00:00Z']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/TCB status:\s+UpToDate \(FMSPC b0c06f000000, tcbEvaluationDataNumber 17/);
    expect(r.out).toMatch(/Advisories:\s+none/);
    expect(r.out).toMatch(/Quoting Enclave:\s+MRSIGNER dc9e2a7c6f948f17474e34a7fc43ed030f7c1563f1babddf6340c82e0e54a8c5, ISVPRODID 2, ISVSVN 6 \(Intel's signed QE identity\)/);
    const j = JSON.parse((await run([q, '--collateral', c, '--at', '2025-07-01T00:00:00Z', '--json'])).out);
    expect(j).toMatchObject({ ok: true, tcb_status: 'UpToDate', advisory_ids: [], tcb_evaluation_data_number: 17, qe_tcb_status: 'UpToDate', tdx_module_tcb_status: 'UpToDate' });
    const stale = await run([q, '--collateral', c, '--at', '2026-01-01T00:00:00Z']);
    expect(stale.code).toBe(4);
    expect(stale.out).toMatch(/^FAIL ERR_TDX_COLLATERAL_STALE: /);
    const evalNumber = await run([q, '--collateral', c, '--at', '2025-07-01T00:00:00Z', '--min-tcb-evaluation-data-number', '18']);
    expect(evalNumber.code).toBe(5);
    expect(evalNumber.out).toMatch(/^FAIL ERR_POLICY_TDX_TCB_EVAL_NUMBER: expected tcbEvaluationDataNumber >= 18, got 17/);
    const status = await run([q, '--collateral', c, '--at', '2025-07-01T00:00:00Z', '--allow-tcb-status', 'SWHardeningNeeded']);
    expect(status.code).toBe(5);
    expect(status.out).toMatch(/^FAIL ERR_POLICY_TDX_TCB_STATUS: expected TCB status SWHardeningNeeded, got UpToDate/);
  });
});
