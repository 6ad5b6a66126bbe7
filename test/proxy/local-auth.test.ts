import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { resolveConfig } from '../../src/config/load.js';
import { createLogger } from '../../src/log/logger.js';
import { startDaemon } from '../../src/proxy/daemon.js';
import { LocalToken } from '../../src/proxy/local-auth.js';
import { LogSink } from '../helpers/log-sink.js';
import { REAL_KEY, startHarness, type Harness } from '../helpers/harness.js';
import { startTestUpstream } from '../helpers/upstream.js';
import { spawnBin } from '../helpers/spawn.js';

const TOKEN = `lt-${'a7'.repeat(20)}`;
const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

/** The listener is bound to 0.0.0.0 (every interface); the test reaches it over 127.0.0.1. */
function viaLoopback(url: string): string {
  const u = new URL(url);
  expect(u.hostname).toBe('0.0.0.0');
  u.hostname = '127.0.0.1';
  return u.origin;
}

async function tokenFile(): Promise<{ dir: string; file: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'tresor-token-'));
  const file = join(dir, 'local-token');
  await writeFile(file, `${TOKEN}\n`, { mode: 0o600 });
  return { dir, file };
}

describe('local token on a non-loopback listener, the daemon injecting the real key', () => {
  let h: Harness;
  let origin: string;
  let dir: string;
  beforeAll(async () => {
    const t = await tokenFile();
    dir = t.dir;
    h = await startHarness({ upstream: { listen: '0.0.0.0:0', local_token_file: t.file } });
    origin = viaLoopback(h.daemon.listeners[0]?.url as string);
  });
  afterAll(async () => {
    await h.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('/healthz and /readyz stay open; /, /status, /metrics, /receipts/* and /v1 need the token', async () => {
    expect((await fetch(`${origin}/healthz`)).status).toBe(200);
    expect([200, 503]).toContain((await fetch(`${origin}/readyz`)).status);
    for (const path of ['/', '/status', '/metrics', '/receipts/abc', '/v1/models', '/upstreams/tresor/v1/models', '/nope']) {
      for (const headers of [{}, { 'x-tresor-local-token': 'wrong-token-0123456789' }, { authorization: 'Bearer wrong' }, { authorization: `Bearer ${TOKEN}x` }] as Record<string, string>[]) {
        const res = await fetch(`${origin}${path}`, { headers });
        expect(res.status, `${path} ${JSON.stringify(headers)}`).toBe(401);
        const body = (await res.json()) as { error: { code: string; type: string; message: string } };
        expect(body.error).toMatchObject({ code: 'local_token_required', type: 'invalid_request_error' });
        expect(res.headers.get('www-authenticate')).toMatch(path.includes('/v1') ? /^Bearer / : /^Basic /);
      }
    }
    const post = await fetch(`${origin}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"model":"x","messages":[]}' });
    expect(post.status).toBe(401);
    expect(h.sim.requestCounts.get('/v1/chat/completions') ?? 0).toBe(0);
  });

  test('X-Tresor-Local-Token, Authorization: Bearer (the app key slot) and Basic (browsers, local pages only) are accepted', async () => {
    expect((await fetch(`${origin}/status`, { headers: { 'x-tresor-local-token': TOKEN } })).status).toBe(200);
    expect((await fetch(`${origin}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })).status).toBe(200);
    const basic = `Basic ${Buffer.from(`anyone:${TOKEN}`).toString('base64')}`;
    const status = await fetch(`${origin}/status`, { headers: { authorization: basic } });
    expect(status.status).toBe(200);
    const s = (await status.json()) as { upstreams: { localTokenRequired: boolean }[] };
    expect(s.upstreams[0]?.localTokenRequired).toBe(true);
    expect((await fetch(`${origin}/v1/models`, { headers: { authorization: basic } })).status).toBe(401);

    // The app uses the local token as its OpenAI API key and changes nothing else.
    const client = new OpenAI({ baseURL: `${origin}/v1`, apiKey: TOKEN, maxRetries: 0 });
    const chat = await client.chat.completions.create({ model: 'eu/tresor/gpt-oss-120b', messages: [{ role: 'user', content: 'hi' }] });
    expect(chat.choices[0]?.message.content).toContain('Simulated answer');
    // The router saw the real key, never the token.
    expect(h.sim.lastAuthorizationSha256.get('/v1/chat/completions')).toBe(sha256(`Bearer ${REAL_KEY}`));
    const viaHeader = await fetch(`${origin}/v1/models`, { headers: { 'x-tresor-local-token': TOKEN, authorization: 'Bearer whatever' } });
    expect(viaHeader.status).toBe(200);

    const metrics = await (await fetch(`${origin}/metrics`, { headers: { 'x-tresor-local-token': TOKEN } })).text();
    expect(metrics).toMatch(/^tresor_attest_local_auth_failures_total\{upstream="tresor"\} ([1-9]\d*)$/m);
    expect(h.logs.text).not.toContain(TOKEN);
    expect(h.logs.text).toContain('local_auth.refused');
    expect(h.logs.text).toContain('apps must present the local token');
  });

  test('tresor-attest status --token-file reads the protected /status; without it, a clear 401', async () => {
    const withToken = spawnBin('tresor-attest', ['status', '--url', origin, '--token-file', join(dir, 'local-token')]);
    expect(await withToken.exited, withToken.stderr()).toBe(0);
    expect(withToken.stdout()).toMatch(/upstream tresor: https:\/\/127\.0\.0\.1:\d+/);
    expect(withToken.stdout()).toMatch(/attestation: enforce/);
    expect(withToken.stdout()).toMatch(/^ {4}snp [0-9a-f]{96} tag [0-9a-f]{64} expires \S+; nonce-bound; channel: bound$/m);
    expect(withToken.stdout()).toContain(`    test roots:  ${join(h.dir, 'test-roots.pem')}\n`);
    const without = spawnBin('tresor-attest', ['status', '--url', origin], { TRESOR_ATTEST_LOCAL_TOKEN_FILE: '' });
    expect(await without.exited).toBe(7);
    expect(without.stderr()).toMatch(/401: this listener requires its local token/);
    const health = spawnBin('tresor-attest', ['status', '--url', origin, '--health']);
    expect(await health.exited).toBe(0);
  });
});

describe('local token when the app brings its own key', () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    while (cleanups.length) await cleanups.pop()?.();
  });

  test('Authorization stays the app key and is passed through; only X-Tresor-Local-Token counts, and it is never forwarded', async () => {
    const up = await startTestUpstream((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"ok":true}');
    });
    cleanups.push(() => up.close());
    const t = await tokenFile();
    await writeFile(join(t.dir, 'ca.pem'), up.caPem);
    const config = resolveConfig(
      {
        state_dir: join(t.dir, 'state'),
        upstreams: [{ url: up.url, listen: '0.0.0.0:0', local_token_file: t.file, ca_file: join(t.dir, 'ca.pem'), api_key_env: 'NO_SUCH_KEY_VAR', attestation: { mode: 'off' } }],
      },
      null,
    );
    const logs = new LogSink();
    const daemon = await startDaemon(config, { logger: createLogger({ level: 'info', format: 'json', destination: logs }), env: {}, processMetrics: false });
    cleanups.push(async () => {
      await daemon.close(200);
      await rm(t.dir, { recursive: true, force: true });
    });
    const origin = viaLoopback(daemon.listeners[0]?.url as string);
    // The token in Authorization is the app's key slot here: refused (and nothing forwarded).
    expect((await fetch(`${origin}/v1/models`, { headers: { authorization: `Bearer ${TOKEN}` } })).status).toBe(401);
    expect(up.received).toHaveLength(0);
    const ok = await fetch(`${origin}/v1/models`, { headers: { authorization: 'Bearer app-own-key', 'X-Tresor-Local-Token': TOKEN, 'x-tresor-receipt': 'false' } });
    expect(ok.status).toBe(200);
    expect(up.received).toHaveLength(1);
    const got = up.received[0]!;
    expect(got.headers.authorization).toBe('Bearer app-own-key');
    expect(got.headers['x-tresor-local-token']).toBeUndefined();
    expect(got.headers['x-tresor-receipt']).toBe('false');
    expect(got.rawHeaders.join('\n')).not.toContain(TOKEN);
    // Local pages still take the token as a bearer.
    expect((await fetch(`${origin}/status`, { headers: { authorization: `Bearer ${TOKEN}` } })).status).toBe(200);
    expect(logs.text).not.toContain(TOKEN);
  });

  test('a non-loopback listen without a token is refused unless explicitly allowed; a weak token file stops the start', async () => {
    expect(() => resolveConfig({ upstreams: [{ listen: '0.0.0.0:8787', attestation: { mode: 'off' } }] }, null)).toThrowError(/listen: 0\.0\.0\.0:8787 is not a loopback address: set local_token_file/);
    expect(() => resolveConfig({ upstreams: [{ listen: '[::]:8787', attestation: { mode: 'off' } }] }, null)).toThrowError(/not a loopback address/);
    expect(() => resolveConfig({ upstreams: [{ listen: '127.0.0.2:8787', attestation: { mode: 'off' } }] }, null)).not.toThrow();
    expect(() => resolveConfig({ upstreams: [{ listen: 'localhost:8787', attestation: { mode: 'off' } }] }, null)).not.toThrow();
    expect(() => resolveConfig({ upstreams: [{ listen: '0.0.0.0:8787', allow_unauthenticated_listen: true, attestation: { mode: 'off' } }] }, null)).not.toThrow();

    const dir = await mkdtemp(join(tmpdir(), 'tresor-token-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    await writeFile(join(dir, 'weak'), 'short\n');
    const config = resolveConfig({ state_dir: join(dir, 'state'), upstreams: [{ url: 'https://127.0.0.1:9', listen: '0.0.0.0:0', local_token_file: join(dir, 'weak'), attestation: { mode: 'off' } }] }, null);
    await expect(startDaemon(config, { logger: createLogger({ level: 'silent', format: 'json' }), env: {}, processMetrics: false })).rejects.toMatchObject({ code: 'ERR_CONFIG_LOCAL_TOKEN_FILE' });
    const missing = resolveConfig({ state_dir: join(dir, 'state'), upstreams: [{ url: 'https://127.0.0.1:9', listen: '0.0.0.0:0', local_token_file: join(dir, 'absent'), attestation: { mode: 'off' } }] }, null);
    await expect(startDaemon(missing, { logger: createLogger({ level: 'silent', format: 'json' }), env: {}, processMetrics: false })).rejects.toMatchObject({ code: 'ERR_CONFIG_LOCAL_TOKEN_FILE' });
  });

  test('config check and serve refuse the same token files, with the same code, message and exit code', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tresor-token-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    for (const [name, token, problem] of [
      ['six', 'abc123', /expected one token of at least 16 characters/],
      ['absent', null, /cannot read .*absent: ENOENT/],
    ] as const) {
      if (token !== null) await writeFile(join(dir, name), `${token}\n`);
      const cfg = join(dir, `${name}.yaml`);
      await writeFile(cfg, `state_dir: ${join(dir, 'state')}\nupstreams:\n  - url: https://127.0.0.1:9\n    listen: 127.0.0.1:0\n    local_token_file: ${join(dir, name)}\n    attestation: { mode: off }\n`);
      const check = spawnBin('tresor-attest', ['config', 'check', cfg]);
      const serve = spawnBin('tresor-attest', ['serve', '--config', cfg]);
      expect(await check.exited, name).toBe(2);
      expect(await serve.exited, name).toBe(2);
      const line = `upstreams.tresor.local_token_file: `;
      expect(check.stderr()).toContain(line);
      expect(check.stderr()).toMatch(problem);
      expect(check.stdout()).not.toContain('configuration is valid');
      expect(serve.stderr()).toContain(check.stderr().trim().replace(/^tresor-attest: /, ''));
    }
  });

  test('the comparison: exact match only, any length', () => {
    const t = new LocalToken(TOKEN);
    expect(t.matches(TOKEN)).toBe(true);
    for (const bad of ['', TOKEN.slice(0, -1), `${TOKEN} `, TOKEN.toUpperCase(), `${TOKEN}${TOKEN}`]) expect(t.matches(bad)).toBe(false);
    expect(t.matches(undefined)).toBe(false);
  });
});
