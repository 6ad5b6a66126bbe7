import { lstat, mkdtemp, readdir, readFile, readlink, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { openLogFile } from '../../src/log/file.js';
import { createLogger } from '../../src/log/logger.js';
import { spawnBin, type Spawned } from '../helpers/spawn.js';

const dirs: string[] = [];
const children: Spawned[] = [];
afterEach(async () => {
  // A failed assertion must not leave a daemon running.
  for (const c of children.splice(0)) if (c.child.exitCode === null) c.child.kill('SIGKILL');
  while (dirs.length) await rm(dirs.pop() as string, { recursive: true, force: true });
});

async function tmp(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'tresor-log-'));
  dirs.push(d);
  return d;
}

const numbered = (files: string[]) =>
  files
    .map((f) => /^tresor-attest\.(\d+)\.log$/.exec(f)?.[1])
    .filter((n): n is string => n !== undefined)
    .map(Number)
    .sort((a, b) => a - b);

describe('log files with size-based rotation', () => {
  test('rolls at max_file_bytes, keeps retention_files old files, 0600 files in a 0700 directory, current.log follows', async () => {
    const dir = join(await tmp(), 'logs');
    const file = join(dir, 'tresor-attest.log');
    const dest = await openLogFile({ file, maxFileBytes: 4096, retentionFiles: 3 });
    const logger = createLogger({ level: 'info', format: 'json', destination: dest });
    const total = 400;
    for (let i = 0; i < total; i++) {
      logger.info({ n: i, upstream: 'tresor', route: '/v1/chat/completions' }, 'request');
      // Bursts of 10 lines (~1.5 KiB) with a pause: the asynchronous writer rolls between them.
      if (i % 10 === 9) await new Promise((r) => setTimeout(r, 10));
    }
    await dest.close();
    await new Promise((r) => setTimeout(r, 50));

    const files = await readdir(dir);
    const nums = numbered(files);
    // ~400 lines of ~150 bytes at 4 KiB per file: many rolls happened, only 3 are left (the current one included).
    expect(nums.length).toBe(3);
    expect(nums[2]).toBeGreaterThanOrEqual(4); // how many depends on how writes were batched
    expect(nums).toEqual([nums[0], (nums[0] as number) + 1, (nums[0] as number) + 2]);
    expect((await stat(dir)).mode & 0o777).toBe(0o700);
    const lines: { n: number }[] = [];
    for (const n of nums) {
      const p = join(dir, `tresor-attest.${n}.log`);
      const st = await stat(p);
      expect(st.mode & 0o777).toBe(0o600);
      // A file rolls once it reaches the limit: it may exceed it by what was written in one go.
      expect(st.size).toBeLessThan(4096 * 4);
      for (const l of (await readFile(p, 'utf8')).split('\n').filter(Boolean)) lines.push(JSON.parse(l) as { n: number });
    }
    // The newest lines survive, in order and without gaps; the oldest were deleted with their files.
    const ns = lines.map((l) => l.n);
    expect(ns.at(-1)).toBe(total - 1);
    expect(ns).toEqual(ns.map((_, i) => (ns[0] as number) + i));
    expect(ns[0]).toBeGreaterThan(0);
    expect((await lstat(join(dir, 'current.log'))).isSymbolicLink()).toBe(true);
    expect(await readlink(join(dir, 'current.log'))).toMatch(new RegExp(`tresor-attest\\.${nums[2]}\\.log$`));
  });

  test('serve --log-file: the daemon logs to the file (not stdout) up to its last line at SIGTERM; a restart appends to the newest file', async () => {
    const dir = await tmp();
    const file = join(dir, 'logs', 'tresor-attest.log');
    const env = {
      TRESOR_ATTEST_STATE_DIR: join(dir, 'state'),
      TRESOR_ATTEST_ATTESTATION_MODE: 'off',
      TRESOR_ATTEST_UPSTREAM_URL: 'https://127.0.0.1:9',
      TRESOR_ATTEST_LISTEN: '127.0.0.1:0',
      TRESOR_API_KEY: 'tr-secret-never-logged-0123456789',
    };
    for (const run of [1, 2]) {
      const p = spawnBin('tresor-attest', ['serve', '--log-file', file], env);
      children.push(p);
      const current = join(dir, 'logs', 'current.log');
      let origin: string | undefined;
      const end = Date.now() + 10_000;
      while (!origin && Date.now() < end) {
        const text = await readFile(current, 'utf8').catch(() => '');
        const msgs = text.split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { msg: string }).msg);
        // This run's lines start after the previous run's 'stopped'.
        const mine = msgs.slice(msgs.lastIndexOf('stopped') + 1).join('\n');
        origin = /OPENAI_BASE_URL=(http:\/\/127\.0\.0\.1:\d+)\/v1/.exec(mine)?.[1];
        if (!origin) await new Promise((r) => setTimeout(r, 50));
      }
      expect(origin, p.stderr()).toBeDefined();
      expect((await fetch(`${origin}/healthz`)).status).toBe(200);
      expect((await fetch(`${origin}/v1/models`, { headers: { 'x-request-id': `run-${run}` } })).status).toBe(502);
      p.child.kill('SIGTERM');
      expect(await p.exited).toBe(0);
      expect(p.stdout()).toBe('');
      const text = await readFile(current, 'utf8');
      const records = text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(records.at(-1)?.msg).toBe('stopped');
      expect(records.some((r) => r.reqId === `run-${run}` && r.msg === 'request')).toBe(true);
      expect(text).not.toContain('tr-secret-never-logged');
    }
    // The second run appended to the newest file (pino-roll continues with the highest number).
    expect(numbered(await readdir(join(dir, 'logs')))).toEqual([1]);
    const all = await readFile(join(dir, 'logs', 'tresor-attest.1.log'), 'utf8');
    expect(all.match(/"msg":"stopped"/g)).toHaveLength(2);
  });
});
