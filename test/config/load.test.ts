import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { loadConfig, resolveConfig } from '../../src/config/load.js';
import { configSchema } from '../../src/config/schema.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tresor-cfg-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

const write = async (name: string, text: string) => {
  const p = join(dir, name);
  await writeFile(p, text);
  return p;
};

describe('configuration', () => {
  test('no file at all: defaults, with the release-root key from the environment', async () => {
    const cfg = await loadConfig({ env: { TRESOR_ATTEST_RELEASE_ROOT_FILE: '/etc/tresor/release-root.pub' } });
    // The daemon's heap grows to at most 1.75× what survived the last full GC (docs/benchmarks.md, #20, i20m).
    expect(cfg.memory).toEqual({ heap_growing_percent: 75, concurrent_array_buffer_sweeping: false });
    expect(cfg.upstreams[0]?.attestation).toEqual({
      mode: 'enforce',
      release_root_file: '/etc/tresor/release-root.pub',
      trust_bundle: 'https://trust.tresor.co/api/router.json',
      require_nonce: false,
      allow_debug: false,
      test_roots_file: null,
      allow_unbound_channel: false,
      max_age_seconds: 600,
      refresh_ahead_seconds: 60,
    });
    expect(cfg.upstreams).toHaveLength(1);
    expect(cfg.upstreams[0]).toMatchObject({
      name: 'tresor',
      url: 'https://api.tresor.co',
      listen: { host: '127.0.0.1', port: 8787 },
      api_key_env: 'TRESOR_API_KEY',
      max_body_bytes: 52428800,
      timeouts: { request_seconds: 180, max_request_seconds: 600 },
    });
    expect(cfg.log).toEqual({ level: 'info', format: 'json', file: null, max_file_bytes: 10 * 1024 * 1024, retention_files: 5 });
    expect(cfg.state_dir).toBe(join(homedir(), '.tresor-attest'));
    expect(Object.isFrozen(cfg.upstreams[0])).toBe(true);
  });

  test('attestation is enforced by default: without a release-root key the daemon refuses to start, unless off is chosen explicitly', async () => {
    await expect(loadConfig({ env: {} })).rejects.toMatchObject({
      code: 'ERR_CONFIG_INVALID',
      message: expect.stringContaining('upstreams[0].attestation.release_root_file: required when attestation.mode is enforce'),
    });
    const off = await loadConfig({ env: { TRESOR_ATTEST_ATTESTATION_MODE: 'off' } });
    expect(off.upstreams[0]?.attestation.mode).toBe('off');
    expect(() => resolveConfig({ upstreams: [{ url: 'http://127.0.0.1:9', attestation: { release_root_file: 'k' } }] }, null)).toThrowError(/needs an https upstream url/);
    expect(() => resolveConfig({ upstreams: [{ attestation: { mode: 'off', trust_bundle: 'http://evil.example/b' } }] }, null)).toThrowError(/trust_bundle: must be an https URL/);
  });

  test('test roots: attestation.test_roots_file (env TRESOR_ATTEST_TEST_ROOTS_FILE) resolves against the file; a profile that cannot bind the channel needs allow_unbound_channel', async () => {
    const file = await write('roots.yaml', 'upstreams:\n  - attestation: { release_root_file: ./root.pub, test_roots_file: sim/test-roots.pem }\n');
    expect((await loadConfig({ file, env: {} })).upstreams[0]?.attestation.test_roots_file).toBe(join(dir, 'sim', 'test-roots.pem'));
    const fromEnv = await loadConfig({ env: { TRESOR_ATTEST_RELEASE_ROOT_FILE: '/k.pub', TRESOR_ATTEST_TEST_ROOTS_FILE: '/sim/test-roots.pem' } });
    expect(fromEnv.upstreams[0]?.attestation.test_roots_file).toBe('/sim/test-roots.pem');
    const pinaivu = { profile: 'pinaivu', pinaivu: { allowed_pcr0: ['ab'.repeat(48)] } };
    expect(() => resolveConfig({ upstreams: [pinaivu] }, null)).toThrowError(
      /upstreams\[0\]\.attestation\.allow_unbound_channel: profile pinaivu cannot bind the TLS channel .* set allow_unbound_channel: true/,
    );
    expect(resolveConfig({ upstreams: [{ ...pinaivu, attestation: { allow_unbound_channel: true } }] }, null).upstreams[0]?.attestation.allow_unbound_channel).toBe(true);
    expect(() => resolveConfig({ upstreams: [{ ...pinaivu, attestation: { mode: 'off' } }] }, null)).not.toThrow();
    // The profiles that bind the channel need no such setting.
    expect(() => resolveConfig({ upstreams: [{ profile: 'near', near: { allowed_measurements: ['ab'.repeat(48)] } }] }, null)).not.toThrow();
  });

  test('precedence: flags > environment > file > defaults', async () => {
    const file = await write('p.yaml', 'log: { level: debug }\nupstreams:\n  - url: https://file.example\n    listen: 127.0.0.1:9001\n    attestation: { release_root_file: ./root.pub }\n');
    const fromFile = await loadConfig({ file, env: {} });
    expect(fromFile.upstreams[0]?.url).toBe('https://file.example');
    expect(fromFile.log.level).toBe('debug');
    const fromEnv = await loadConfig({ file, env: { TRESOR_ATTEST_UPSTREAM_URL: 'https://env.example', TRESOR_ATTEST_LOG_LEVEL: 'warn' } });
    expect(fromEnv.upstreams[0]?.url).toBe('https://env.example');
    expect(fromEnv.upstreams[0]?.listen.port).toBe(9001);
    expect(fromEnv.log.level).toBe('warn');
    const fromFlags = await loadConfig({ file, env: { TRESOR_ATTEST_UPSTREAM_URL: 'https://env.example' }, overrides: { upstream: 'https://flag.example', listen: '[::1]:9002' } });
    expect(fromFlags.upstreams[0]?.url).toBe('https://flag.example');
    expect(fromFlags.upstreams[0]?.listen).toEqual({ host: '::1', port: 9002 });
  });

  test('TRESOR_ATTEST_CONFIG names the file; relative paths resolve against it', async () => {
    const file = await write('rel.yaml', 'state_dir: ./state\nupstreams:\n  - ca_file: certs/ca.pem\n    attestation: { release_root_file: keys/root.pub, trust_bundle: bundles/router.jws }\n');
    const cfg = await loadConfig({ env: { TRESOR_ATTEST_CONFIG: file } });
    expect(cfg.state_dir).toBe(join(dir, 'state'));
    expect(cfg.upstreams[0]?.ca_file).toBe(join(dir, 'certs/ca.pem'));
    expect(cfg.upstreams[0]?.attestation.release_root_file).toBe(join(dir, 'keys/root.pub'));
    expect(cfg.upstreams[0]?.attestation.trust_bundle).toBe(join(dir, 'bundles/router.jws'));
    expect(cfg.source).toBe(file);
  });

  test.each([
    ['unknown key', { log: { colour: 'x' } }, 'log.colour: unknown key'],
    ['unknown top-level key', { listen_port: 1 }, 'listen_port: unknown key'],
    ['wrong type', { shutdown_grace_seconds: 'soon' }, 'shutdown_grace_seconds: must be number'],
    ['a heap growing percent below 0', { memory: { heap_growing_percent: -1 } }, 'memory.heap_growing_percent: must be >= 0'],
    ['a fractional heap growing percent', { memory: { heap_growing_percent: 2.5 } }, 'memory.heap_growing_percent: must be integer'],
    ['array buffer sweeping not a boolean', { memory: { concurrent_array_buffer_sweeping: 'no' } }, 'memory.concurrent_array_buffer_sweeping: must be boolean'],
    ['enum', { log: { format: 'xml' } }, 'log.format: must be one of "json", "pretty"'],
    ['plain http to a remote host', { upstreams: [{ url: 'http://api.tresor.co' }] }, 'upstreams[0].url: must be an https URL (plain http only to loopback)'],
    ['not a URL', { upstreams: [{ url: 'api.tresor.co' }] }, 'upstreams[0].url: must be an absolute URL'],
    ['credentials in the URL', { upstreams: [{ url: 'https://u:p@api.tresor.co' }] }, 'upstreams[0].url: must not contain credentials'],
    ['bad listen', { upstreams: [{ listen: 'localhost' }] }, 'upstreams[0].listen: expected HOST:PORT'],
    ['duplicate names', { upstreams: [{ name: 'a', listen: '127.0.0.1:1' }, { name: 'a', listen: '127.0.0.1:2' }] }, 'upstreams[1].name: duplicate upstream name "a"'],
    ['shared listen', { upstreams: [{ name: 'a' }, { name: 'b' }] }, 'upstreams[1].listen: 127.0.0.1:8787 is already used'],
    ['budget over the cap', { upstreams: [{ timeouts: { request_seconds: 700 } }] }, 'upstreams[0].timeouts.request_seconds: must not exceed max_request_seconds'],
    ['unknown upstream key', { upstreams: [{ api_key: 'tr-secret' }] }, 'upstreams[0].api_key: unknown key'],
    ['both collateral sources', { upstreams: [{ tdx: { collateral_file: 'c.json', collateral_dir: 'cache' } }] }, 'upstreams[0].tdx.collateral_dir: set either tdx.collateral_file'],
    ['a Revoked TCB status', { upstreams: [{ tdx: { allowed_tcb_statuses: ['UpToDate', 'Revoked'] } }] }, 'upstreams[0].tdx.allowed_tcb_statuses[1]: must be one of'],
    ['a bad launch TCB spec', { upstreams: [{ snp: { min_launch_tcb: 'snp=5' } }] }, 'upstreams[0].snp.min_launch_tcb: must match pattern'],
    ['a bad reported TCB spec', { upstreams: [{ snp: { min_tcb: 'bl=1' } }] }, 'upstreams[0].snp.min_tcb: must match pattern'],
  ])('rejects %s with a message naming the key', (_name, doc, message) => {
    expect(() => resolveConfig(doc as Record<string, unknown>, null)).toThrowError(expect.objectContaining({ code: 'ERR_CONFIG_INVALID', message: expect.stringContaining(message) }));
  });

  test('bad YAML and non-numeric environment values are errors, not defaults', async () => {
    const file = await write('bad.yaml', 'log: [unclosed\n');
    await expect(loadConfig({ file, env: {} })).rejects.toMatchObject({ code: 'ERR_CONFIG_YAML', phase: 'usage' });
    const dup = await write('dup.yaml', 'log: {}\nlog: {}\n');
    await expect(loadConfig({ file: dup, env: {} })).rejects.toMatchObject({ code: 'ERR_CONFIG_YAML' });
    await expect(loadConfig({ env: { TRESOR_ATTEST_SHUTDOWN_GRACE_SECONDS: 'ten' } })).rejects.toMatchObject({ code: 'ERR_CONFIG_INVALID' });
    await expect(loadConfig({ file: join(dir, 'missing.yaml'), env: {} })).rejects.toMatchObject({ code: 'ERR_CONFIG_UNREADABLE' });
  });

  test('config.example.yaml is valid, equals the defaults (plus its release-root path), and shows every key of the schema', async () => {
    const path = new URL('../../config.example.yaml', import.meta.url).pathname;
    const text = await readFile(path, 'utf8');
    const example = resolveConfig(parse(text) as Record<string, unknown>, path);
    const defaults = resolveConfig({ upstreams: [{ attestation: { release_root_file: './release-root.pub' } }] }, path);
    expect(example).toEqual(defaults);
    // Members of a list whose default is empty (e.g. tdx.allowed_rtmrs) can only be shown in a commented example.
    const keys: { key: string; commented: boolean }[] = [];
    const walk = (schema: { properties?: Record<string, unknown>; items?: unknown; default?: unknown }, commented: boolean) => {
      for (const [k, v] of Object.entries(schema.properties ?? {})) {
        keys.push({ key: k, commented });
        walk(v as typeof schema, commented);
      }
      if (schema.items) walk(schema.items as typeof schema, commented || (Array.isArray(schema.default) && schema.default.length === 0));
    };
    walk(configSchema as unknown as { properties: Record<string, unknown> }, false);
    for (const { key, commented } of keys) {
      expect(text, `config.example.yaml must show ${key}`).toMatch(new RegExp(`^\\s*${commented ? '#?\\s*' : ''}-?\\s*${key}:`, 'm'));
    }
  });
});
