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
});
