import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { spawnBin } from '../helpers/spawn.js';
import { vectorPath } from '../helpers/vectors.js';

const prod = vectorPath('nitro-evervault-beta-prod-2022-10-13.cbor');
const at = '2022-10-13T08:58:02.136Z';
const pcr0 = 'f4d48b81a460c9916d1e685119074bf24660afd3e34fae9fca0a0d28d9d5599936332687e6f66fc890ac8cf150142d8b';

describe('tresor-verify nitro', () => {
  test('PASS at the document time, with an expected PCR; the decoded fields in --json', async () => {
    const p = spawnBin('tresor-verify', ['nitro', prod, '--at', at, '--pcr', `0=${pcr0}`]);
    expect(await p.exited).toBe(0);
    expect(p.stdout()).toMatch(/^PASS\nModule ID: +i-/);
    expect(p.stdout()).toContain(`PCR0:        ${pcr0}`);
    const j = spawnBin('tresor-verify', ['nitro', prod, '--at', at, '--json']);
    expect(await j.exited).toBe(0);
    expect(JSON.parse(j.stdout())).toMatchObject({ ok: true, timestamp: at, pcrs: { '0': pcr0 } });
  });

  test('exit codes by phase: 4 expired today, 5 policy (PCR, debug), 3 malformed, 2 usage', async () => {
    const today = spawnBin('tresor-verify', ['nitro', prod]);
    expect(await today.exited).toBe(4);
    expect(today.stdout()).toMatch(/^FAIL ERR_CHAIN_EXPIRED/);
    const pcr = spawnBin('tresor-verify', ['nitro', prod, '--at', at, '--pcr', `0=${'ab'.repeat(48)}`, '--json']);
    expect(await pcr.exited).toBe(5);
    expect(JSON.parse(pcr.stdout())).toMatchObject({ ok: false, pcrs: { '0': pcr0 }, error: { code: 'ERR_POLICY_PCR_MISMATCH', phase: 'policy' } });
    const debug = vectorPath('nitro-anjuna-debug-full-2024-01-24.cbor');
    const d = spawnBin('tresor-verify', ['nitro', debug, '--at', '2024-01-24T18:14:25.635Z']);
    expect(await d.exited).toBe(5);
    expect(d.stdout()).toMatch(/^FAIL ERR_POLICY_DEBUG_ENCLAVE/);
    const allowed = spawnBin('tresor-verify', ['nitro', debug, '--at', '2024-01-24T18:14:25.635Z', '--allow-debug', '--nonce', Buffer.from('Nonce\n').toString('hex')]);
    expect(await allowed.exited).toBe(0);
    const marlin = spawnBin('tresor-verify', ['nitro', vectorPath('NEGATIVE-nitro-marlin-mock-ca-2024-12-13.cbor'), '--at', '2024-12-13T09:05:45.008Z']);
    expect(await marlin.exited).toBe(4);
    expect(marlin.stdout()).toMatch(/^FAIL ERR_CHAIN_UNTRUSTED/);
    const junk = spawnBin('tresor-verify', ['nitro', vectorPath('README.md')]);
    expect(await junk.exited).toBe(3);
    const usage = spawnBin('tresor-verify', ['nitro', prod, '--pcr', '0=zz']);
    expect(await usage.exited).toBe(2);
  });

  test('hex on stdin is accepted', async () => {
    const p = spawnBin('tresor-verify', ['nitro', '-', '--at', at]);
    p.child.stdin?.end(readFileSync(prod).toString('hex'));
    expect(await p.exited).toBe(0);
  });
});
