import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { RunningSimulator } from '../../src/sim/index.js';
import { processSetup, type ProcessSetup } from '../helpers/process-daemon.js';
import { peakRssKb, spawnBin } from '../helpers/spawn.js';
import { parseStrictJson } from '../helpers/strict-json.js';
import { createEd25519Signer } from '../../src/sim/mint/trust.js';

let setup: ProcessSetup;
let sim: RunningSimulator;
let dir: string;
beforeAll(async () => {
  setup = await processSetup('tresor-proc-');
  ({ sim, dir } = setup);
});
afterAll(() => setup.close());

const serve = (extraEnv: Record<string, string> = {}) => setup.serve(extraEnv);

function multipart(boundary: string, fileBytes: number): AsyncIterable<Buffer> {
  return (async function* () {
    yield Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="model"\r\n\r\nwhisper-large-v3\r\n`);
    yield Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\nContent-Type: audio/wav\r\n\r\n`);
    const block = Buffer.alloc(256 * 1024, 0x41);
    for (let sent = 0; sent < fileBytes; sent += block.length) yield block;
    yield Buffer.from(`\r\n--${boundary}--\r\n`);
  })();
}

describe('the real daemon process', () => {
  test('transcription uploads stream through: daemon memory does not grow with upload size', async () => {
    const { p, base } = await serve({ TRESOR_ATTEST_MAX_BODY_BYTES: String(256 * 1024 * 1024) });
    try {
      const upload = async (bytes: number) => {
        const boundary = 'tresorboundary42';
        const res = await request(`${base}/audio/transcriptions`, {
          method: 'POST',
          headers: { 'content-type': `multipart/form-data; boundary=${boundary}` },
          body: multipart(boundary, bytes) as unknown as string,
        });
        const json = (await res.body.json()) as { text: string };
        expect(res.statusCode).toBe(200);
        expect(json.text).toContain(`${bytes} bytes`);
      };
      // The first upload grows the heap to its working size (GC slack, tens of MB)...
      await upload(64 * 1024 * 1024);
      const warmPeak = peakRssKb(p.child.pid as number);
      // ...a 2.5 times larger one must not move the peak by anything like its size (a buffering
      // proxy would add all 160 MB); the margin absorbs GC timing on a loaded 2-core machine.
      await upload(160 * 1024 * 1024);
      expect(peakRssKb(p.child.pid as number) - warmPeak).toBeLessThan(64 * 1024);
    } finally {
      p.child.kill('SIGTERM');
      await p.exited;
    }
  });

  test('SIGTERM drains a stream in flight, then exits 0', async () => {
    sim.faults.chunkDelayMs = 80;
    const { p, base } = await serve();
    try {
      const res = await request(`${base}/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'eu/tresor/gpt-oss-120b', stream: true, messages: [{ role: 'user', content: 'a fairly long prompt to get many chunks out' }] }),
      });
      expect(res.statusCode).toBe(200);
      const bodyDone = res.body.text();
      await new Promise((r) => setTimeout(r, 150));
      p.child.kill('SIGTERM');
      const text = await bodyDone;
      expect(text.endsWith('data: [DONE]\n\n')).toBe(true);
      expect(await p.exited).toBe(0);
    } finally {
      sim.faults.chunkDelayMs = 0;
      p.child.kill('SIGKILL');
    }
  });

  test('an invalid configuration stops the daemon with exit code 2 and names the key', async () => {
    const cfg = join(dir, 'bad.yaml');
    await writeFile(cfg, 'log:\n  level: info\n  colour: blue\nupstreams:\n  - url: http://example.com\n');
    const p = spawnBin('tresor-attest', ['serve', '--config', cfg]);
    expect(await p.exited).toBe(2);
    expect(p.stderr()).toContain('log.colour: unknown key');
    expect(p.stderr()).toContain('upstreams[0].url: must be an https URL (plain http only to loopback)');
  });

  test('config check prints the effective settings without the key', async () => {
    const cfg = join(dir, 'good.yaml');
    await writeFile(cfg, `upstreams:\n  - name: main\n    url: ${sim.url}\n    attestation:\n      release_root_file: ./release-root.pub\n`);
    const p = spawnBin('tresor-attest', ['config', 'check', cfg], { TRESOR_API_KEY: 'tr-supersecretvalue' });
    expect(await p.exited).toBe(0);
    expect(p.stdout()).toContain('configuration is valid');
    expect(p.stdout()).toContain('name: main');
    expect(p.stdout()).not.toContain('supersecretvalue');
  });

  test('every line of a full run\'s log is one JSON object with unique keys (verified and failed attestation, chats, shutdown)', async () => {
    const chat = (base: string, stream: boolean) =>
      request(`${base}/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'eu/tresor/gpt-oss-120b', stream, messages: [{ role: 'user', content: 'hi' }] }),
      }).then(async (r) => ({ status: r.statusCode, text: await r.body.text() }));
    const healthy = await serve();
    expect((await chat(healthy.base, false)).status).toBe(200);
    expect((await chat(healthy.base, true)).status).toBe(200);
    healthy.p.child.kill('SIGTERM');
    expect(await healthy.p.exited).toBe(0);
    // The same router under a release root it was not signed by: attestation fails, requests are refused.
    const foreignRoot = join(dir, 'foreign-root.pub');
    await writeFile(foreignRoot, createEd25519Signer('foreign').publicPem);
    const failing = await serve({ TRESOR_ATTEST_RELEASE_ROOT_FILE: foreignRoot });
    expect((await chat(failing.base, false)).status).toBe(502);
    failing.p.child.kill('SIGTERM');
    expect(await failing.p.exited).toBe(0);

    const lines = (healthy.p.stdout() + failing.p.stdout()).split('\n').filter((l) => l !== '');
    const events = lines.map((l) => (parseStrictJson(l) as { event?: string }).event);
    expect(events).toContain('attestation.verified');
    expect(events).toContain('attestation.failed');
    // serve set the process-wide V8 flags of the default memory settings, and said so once per start.
    const flags = lines.map((l) => parseStrictJson(l) as { event?: string; flags?: string[] }).filter((l) => l.event === 'v8.flags');
    const defaults = ['--heap-growing-percent=75', '--no-concurrent-array-buffer-sweeping'];
    expect(flags.map((l) => l.flags)).toEqual([defaults, defaults]);
  });
});
