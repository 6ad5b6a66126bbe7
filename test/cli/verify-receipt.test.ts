import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startSimulator, type RunningSimulator } from '../../src/sim/index.js';
import { spawnBin } from '../helpers/spawn.js';

let sim: RunningSimulator;
let dir: string;
let agent: Agent;
const KEY = 'tr-cli-test';

beforeAll(async () => {
  sim = await startSimulator();
  agent = new Agent({ connect: { ca: sim.caPem } });
  dir = await mkdtemp(join(tmpdir(), 'tresor-cli-'));
  await writeFile(join(dir, 'sim-ca.pem'), sim.caPem);
});
afterAll(async () => {
  await agent.close();
  await sim.close();
  await rm(dir, { recursive: true, force: true });
});

/** One real exchange with the simulator, saved as the files a user would have. */
async function exchange(name: string) {
  const body = JSON.stringify({ model: 'eu/tresor/gpt-oss-120b', stream: true, messages: [{ role: 'user', content: name }] });
  const res = await request(`${sim.url}/v1/chat/completions`, { dispatcher: agent, method: 'POST', headers: { authorization: `Bearer ${KEY}` }, body });
  const bytes = Buffer.from(await res.body.arrayBuffer());
  const id = /"receipt_id":"([^"]+)"/.exec(bytes.toString())?.[1] as string;
  // The receipt is stored once the stream has ended on the simulator's side: poll (bounded).
  let receipt = '';
  for (let i = 0; i < 100; i++) {
    const r = await request(`${sim.url}/v1/receipts/${id}`, { dispatcher: agent, headers: { authorization: `Bearer ${KEY}` } });
    receipt = await r.body.text();
    if (r.statusCode === 200) break;
    await new Promise((done) => setTimeout(done, 30));
  }
  const files = { receipt: join(dir, `${name}.receipt.json`), req: join(dir, `${name}.req`), res: join(dir, `${name}.res`), jwks: join(dir, 'jwks.json') };
  await writeFile(files.receipt, receipt);
  await writeFile(files.req, body);
  await writeFile(files.res, bytes);
  await writeFile(files.jwks, await (await request(`${sim.url}/.well-known/jwks.json`, { dispatcher: agent })).body.text());
  return files;
}

describe('tresor-verify receipt', () => {
  test('PASS with the docs lines, from a file and from stdin, digests checked against the saved bodies', async () => {
    const f = await exchange('one');
    const p = spawnBin('tresor-verify', ['receipt', '--jwks-file', f.jwks, f.receipt]);
    expect(await p.exited).toBe(0);
    expect(p.stdout()).toBe('PASS\nReceipt type:  message\nKey ID:        router-receipt-1\n');
    const s = spawnBin('tresor-verify', ['receipt', '--jwks-file', f.jwks, '--request-body', f.req, '--response-body', f.res, '-']);
    s.child.stdin?.end(await import('node:fs/promises').then((fs) => fs.readFile(f.receipt)));
    expect(await s.exited).toBe(0);
    expect(s.stdout()).toContain('Response digest:  match');
  });

  test('a bare JWS and --json; FAIL with a code and exit 5 on a digest mismatch, 4 on a bad signature', async () => {
    const f = await exchange('two');
    const jws = JSON.parse(await import('node:fs/promises').then((fs) => fs.readFile(f.receipt, 'utf8'))).receipt as string;
    const bare = join(dir, 'bare.jws');
    await writeFile(bare, jws);
    const j = spawnBin('tresor-verify', ['receipt', '--jwks-file', f.jwks, '--json', bare]);
    expect(await j.exited).toBe(0);
    expect(JSON.parse(j.stdout())).toMatchObject({ ok: true, receipt_type: 'message', kid: 'router-receipt-1' });
    const mismatch = spawnBin('tresor-verify', ['receipt', '--jwks-file', f.jwks, '--response-body', f.req, f.receipt]);
    expect(await mismatch.exited).toBe(5);
    expect(mismatch.stdout()).toMatch(/^FAIL ERR_RECEIPT_RESPONSE_DIGEST: /);
    const [h, p, s] = jws.split('.');
    await writeFile(bare, `${h}.${p}.${Buffer.from(Buffer.from(s as string, 'base64url').map((b, i) => (i === 5 ? b ^ 1 : b))).toString('base64url')}`);
    const forged = spawnBin('tresor-verify', ['receipt', '--jwks-file', f.jwks, '--json', bare]);
    expect(await forged.exited).toBe(4);
    expect(JSON.parse(forged.stdout())).toMatchObject({ ok: false, error: { code: 'ERR_RECEIPT_SIGNATURE', phase: 'verify' } });
  });

  test('--jwks-url fetches the JWKS (https with an extra CA via NODE_EXTRA_CA_CERTS); fetch failures exit 6; usage errors exit 2', async () => {
    const f = await exchange('three');
    const ok = spawnBin('tresor-verify', ['receipt', '--jwks-url', `${sim.url.replace('127.0.0.1', 'localhost')}/.well-known/jwks.json`, f.receipt], {
      NODE_EXTRA_CA_CERTS: join(dir, 'sim-ca.pem'),
    });
    expect(await ok.exited, ok.stdout() + ok.stderr()).toBe(0);
    const down = spawnBin('tresor-verify', ['receipt', '--jwks-url', 'https://127.0.0.1:1/jwks.json', f.receipt]);
    expect(await down.exited).toBe(6);
    expect(down.stdout()).toMatch(/^FAIL ERR_JWKS_FETCH/);
    const clear = spawnBin('tresor-verify', ['receipt', '--jwks-url', 'http://example.com/jwks.json', f.receipt]);
    expect(await clear.exited).toBe(2);
    const both = spawnBin('tresor-verify', ['receipt', f.receipt]);
    expect(await both.exited).toBe(2);
    expect(both.stderr()).toContain('give exactly one of --jwks-url or --jwks-file');
  });
});
