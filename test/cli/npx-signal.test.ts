import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { request } from 'undici';
import { describe, expect, onTestFinished, test } from 'vitest';
import { processScratch, ROOT } from '../helpers/spawn.js';

const scratch = processScratch('tresor-npx-');

/** Processes whose command line names `marker`. */
function pidsNaming(marker: string): number[] {
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .filter((d) => {
      try {
        return readFileSync(`/proc/${d}/cmdline`, 'utf8').includes(marker);
      } catch {
        return false; // gone meanwhile
      }
    })
    .map(Number);
}

/** A project that has tresor-attest installed (linked to this tree), as after `npm install tresor-attest`. */
async function project(): Promise<string> {
  const dir = join(scratch.dir, 'app');
  await mkdir(join(dir, 'node_modules', '.bin'), { recursive: true });
  await writeFile(join(dir, 'package.json'), '{"name":"app","version":"1.0.0","private":true}\n');
  await symlink(ROOT.replace(/\/$/, ''), join(dir, 'node_modules', 'tresor-attest')).catch(() => undefined);
  await symlink('../tresor-attest/bin/tresor-attest.js', join(dir, 'node_modules', '.bin', 'tresor-attest')).catch(() => undefined);
  return dir;
}

describe('npx tresor-attest serve stops when npx is signalled', () => {
  // SIGTERM to npx alone (what a process manager or `kill` sends); SIGINT to the whole process
  // group, which is what Ctrl-C in a terminal does (npm itself waits for its child on SIGINT).
  test.each([
    ['SIGTERM', 'npx'],
    ['SIGINT', 'its process group (Ctrl-C)'],
  ] as const)('%s to %s: the daemon drains and exits, no orphan keeps the port', async (signal, to) => {
    const dir = await project();
    const npx = spawn('npx', ['--offline', 'tresor-attest', 'serve', '--listen', '127.0.0.1:0', '--upstream', 'http://127.0.0.1:9', '--state-dir', join(scratch.dir, `state-${signal}`)], {
      cwd: dir,
      env: { ...process.env, HOME: scratch.dir, npm_config_update_notifier: 'false', TRESOR_ATTEST_ATTESTATION_MODE: 'off', TRESOR_API_KEY: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true, // its own process group, as a shell job
    });
    let out = '';
    npx.stdout.on('data', (c: Buffer) => (out += c.toString()));
    // The pipe closes once every process holding it (npm, its shell, the daemon) has exited.
    const closed = new Promise<void>((resolve) => npx.stdout.on('close', () => resolve()));
    const stateDir = join(scratch.dir, `state-${signal}`);
    onTestFinished(() => {
      // Whatever the outcome, leave nothing behind (npm, its shell, the daemon: all name the state dir).
      for (const pid of pidsNaming(stateDir)) process.kill(pid, 'SIGKILL');
    });
    const end = Date.now() + 30_000;
    while (!/serving OPENAI_BASE_URL=(http:\/\/[^"\s]+)/.test(out)) {
      if (Date.now() > end || npx.exitCode !== null) throw new Error(`npx did not start the daemon: ${out}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const base = (/serving OPENAI_BASE_URL=(http:\/\/[^"\s]+)/.exec(out) as RegExpExecArray)[1] as string;
    const health = `${base.replace(/\/v1$/, '')}/healthz`;
    expect((await request(health)).statusCode).toBe(200);
    if (to === 'npx') npx.kill(signal);
    else process.kill(-(npx.pid as number), signal);
    await Promise.race([closed, new Promise((_, reject) => setTimeout(() => reject(new Error(`daemon still running 10 s after ${signal} to npx: ${out}`)), 10_000))]);
    expect(out).toContain('"msg":"stopped"');
    expect(pidsNaming(stateDir)).toEqual([]);
    await expect(request(health)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  }, 60_000);
});
