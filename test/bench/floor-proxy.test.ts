import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startSimulator, type RunningSimulator } from '../../src/sim/index.js';
import { createRouterEvidence } from '../../src/sim/mint/router.js';
import { ROOT } from '../helpers/spawn.js';

const KEY = `Bearer tr-${'c4'.repeat(24)}`;
const CHAT = JSON.stringify({ model: 'eu/tresor/gpt-oss-120b', messages: [{ role: 'user', content: 'floor' }] });

interface Counters {
  pending: number;
  verified: number;
  failed: number;
  missing: number;
}

/**
 * The bench's floor contender (bench/floor-proxy.mjs) is a reference only if it does the work it
 * stands for: each receipt fetched, its ES256 signature and digests checked, the lines synced. A
 * floor that skipped the check would be cheaper than any honest daemon; these tests would catch it.
 */
/** The floor proxy started with `flags` against a fresh simulator, for the tests of one describe block. */
function floorProxy(flags: string[]) {
  const s = { sim: undefined as unknown as RunningSimulator, dir: '', origin: '' };
  let proxy: ChildProcess | undefined;
  beforeAll(async () => {
    s.sim = await startSimulator({ evidence: await createRouterEvidence({}) });
    s.dir = await mkdtemp(join(tmpdir(), 'tresor-floor-'));
    await writeFile(join(s.dir, 'ca.pem'), s.sim.caPem);
    const child = spawn(process.execPath, [`${ROOT}bench/floor-proxy.mjs`, s.sim.url, join(s.dir, 'ca.pem'), s.dir, ...flags], { stdio: ['ignore', 'pipe', 'inherit'] });
    proxy = child;
    s.origin = await new Promise<string>((resolve, reject) => {
      let out = '';
      child.stdout?.on('data', (c: Buffer) => {
        out += c.toString();
        const m = /listening (http:\/\/\S+)/.exec(out);
        if (m) resolve(m[1] as string);
      });
      child.once('exit', (code) => reject(new Error(`floor-proxy exited with ${code}`)));
    });
  });
  afterAll(async () => {
    proxy?.kill('SIGTERM');
    await s.sim?.close();
    await rm(s.dir, { recursive: true, force: true });
  });
  const chat = async () => {
    const res = await request(`${s.origin}/v1/chat/completions`, { method: 'POST', headers: { authorization: KEY, 'content-type': 'application/json' }, body: CHAT });
    expect(res.statusCode).toBe(200);
    return (await res.body.json()) as { tresor: { receipt_id: string } };
  };
  const settled = async (): Promise<Counters> => {
    for (;;) {
      const c = (await (await request(`${s.origin}/__floor`)).body.json()) as Counters;
      if (c.pending === 0) return c;
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  return { s, chat, settled };
}

/** A transcription upload of `audio` (one multipart file) through the proxy at `origin`. */
function upload(origin: string, audio: Buffer) {
  const boundary = 'floorboundary';
  const body = Buffer.concat([
    Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="model"\r\n\r\nwhisper-large-v3\r\n--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\nContent-Type: audio/wav\r\n\r\n`),
    audio,
    Buffer.from(`\r\n--${boundary}--\r\n`),
  ]);
  return request(`${origin}/v1/audio/transcriptions`, { method: 'POST', headers: { authorization: KEY, 'content-type': `multipart/form-data; boundary=${boundary}` }, body });
}

/** A receipt the simulator spoils with `fault` is counted as failed by the floor proxy, never verified. */
async function countedFailed(f: ReturnType<typeof floorProxy>, fault: string): Promise<void> {
  const before = await f.settled();
  Object.assign(f.s.sim.faults, { [fault]: true });
  try {
    await f.chat();
    const after = await f.settled();
    expect(after).toMatchObject({ verified: before.verified, failed: before.failed + 1, missing: before.missing });
  } finally {
    Object.assign(f.s.sim.faults, { [fault]: false });
  }
}

describe.each([[[]], [['--h2']]])('bench/floor-proxy.mjs %j', (flags: string[]) => {
  const f = floorProxy(flags);
  const { chat, settled } = f;
  const dirOf = () => f.s.dir;
  const origin = () => f.s.origin;

  test('every receipt is fetched and verified, its job journaled and its record and JWS synced', async () => {
    const answers = await Promise.all(Array.from({ length: 8 }, chat));
    const c = await settled();
    expect(c).toMatchObject({ verified: 8, failed: 0, missing: 0 });
    const journal = (await readFile(join(dirOf(), 'journal.jsonl'), 'utf8')).trim().split('\n');
    expect(journal.map((l) => JSON.parse(l).receipt_id).sort()).toEqual(answers.map((a) => a.tresor.receipt_id).sort());
    const audit = (await readFile(join(dirOf(), 'audit.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
    expect(audit.map((r) => r.verdict)).toEqual(Array(8).fill('verified'));
    expect((await readFile(join(dirOf(), 'receipts.jsonl'), 'utf8')).trim().split('\n')).toHaveLength(8);
  });

  test("an answer ends only once its job's journal line is written (durability before the end of the answer)", async () => {
    const { tresor } = await chat();
    expect(await readFile(join(dirOf(), 'journal.jsonl'), 'utf8')).toContain(`"receipt_id":"${tresor.receipt_id}"`);
    await settled();
  });

  test('a transcription upload streams through the request digest: its receipt verifies', async () => {
    const before = await settled();
    const res = await upload(origin(), Buffer.alloc(3 * 1024 * 1024 + 17, 0x41));
    expect(res.statusCode).toBe(200);
    await res.body.dump();
    expect(await settled()).toMatchObject({ verified: before.verified + 1, failed: before.failed, missing: before.missing });
  });

  test.each([['receiptTamper'], ['receiptWrongKey']])('a receipt with the fault %s is counted as failed, never verified', (fault) => countedFailed(f, fault));
});

/** floor-fetch-verify: only the GET and the ES256 check, and those for every receipt. */
describe('bench/floor-proxy.mjs --fetch-verify-only', () => {
  const f = floorProxy(['--fetch-verify-only']);

  test('every receipt is fetched and its signature checked; nothing is journaled or recorded', async () => {
    await Promise.all(Array.from({ length: 8 }, f.chat));
    expect(await f.settled()).toMatchObject({ verified: 8, failed: 0, missing: 0 });
    for (const file of ['journal.jsonl', 'audit.jsonl', 'receipts.jsonl']) expect(await readFile(join(f.s.dir, file), 'utf8')).toBe('');
  });

  test.each([['receiptTamper'], ['receiptWrongKey']])('a receipt with the fault %s is counted as failed, never verified', (fault) => countedFailed(f, fault));
});

/** floor-digest: the upload forwarded whole through both digests, and nothing else (no receipt fetched, nothing written). */
describe('bench/floor-proxy.mjs --digest-only', () => {
  const f = floorProxy(['--digest-only']);

  test('an upload reaches the router byte for byte; no receipt is fetched and nothing is written', async () => {
    const audio = Buffer.alloc(2 * 1024 * 1024 + 5, 0x42);
    const res = await upload(f.s.origin, audio);
    expect(res.statusCode).toBe(200);
    expect(((await res.body.json()) as { text: string }).text).toContain(`${audio.length} bytes`);
    await f.chat();
    expect(await f.settled()).toMatchObject({ pending: 0, verified: 0, failed: 0, missing: 0 });
    expect(f.s.sim.requestCounts.get('/v1/receipts') ?? 0).toBe(0);
    for (const file of ['journal.jsonl', 'audit.jsonl', 'receipts.jsonl']) expect(await readFile(join(f.s.dir, file), 'utf8')).toBe('');
  });
});
