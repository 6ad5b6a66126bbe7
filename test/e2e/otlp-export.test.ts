import { generateKeyPairSync } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { processSetup, type ProcessSetup } from '../helpers/process-daemon.js';
import { auditLines, exported, startOtlpReceiver, until, type OtlpReceiver } from '../helpers/otlp-receiver.js';
import { spawnBin } from '../helpers/spawn.js';

async function chat(base: string, n: number): Promise<void> {
  const res = await request(`${base}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'eu/tresor/gpt-oss-120b', messages: [{ role: 'user', content: `otlp ${n}` }] }),
  });
  await res.body.text();
  expect(res.statusCode).toBe(200);
}

describe('the real daemon exports its audit trail to an OTLP/HTTP receiver', () => {
  let setup: ProcessSetup;
  let receiver: OtlpReceiver;
  let env: Record<string, string>;
  let out: string;
  beforeAll(async () => {
    setup = await processSetup('tresor-otlp-e2e-');
    out = join(setup.dir, 'collector.jsonl');
    receiver = await startOtlpReceiver(out);
    const key = join(setup.dir, 'audit-signing.pem');
    await writeFile(key, generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }));
    // Short intervals from the config file; the endpoint, protocol and names from the standard variables.
    await writeFile(join(setup.dir, 'config.yaml'), 'otlp:\n  interval_ms: 50\n  retry_max_ms: 300\n  endpoint: http://127.0.0.1:9/never-used\n');
    env = {
      TRESOR_ATTEST_CONFIG: join(setup.dir, 'config.yaml'),
      TRESOR_ATTEST_AUDIT_SIGNING_KEY_FILE: key,
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf',
      OTEL_EXPORTER_OTLP_TIMEOUT: '300',
      OTEL_EXPORTER_OTLP_HEADERS: 'x-tenant=fleet-7',
      OTEL_SERVICE_NAME: 'sidecar-e2e',
      OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment=test',
    };
  });
  afterAll(async () => {
    await receiver.close();
    await setup.close();
  });

  test('the collector down, kill -9 mid-backlog, a restart: every record arrives at least once and tresor-verify audit --otlp-json passes', { timeout: 120_000 }, async () => {
    const auditDir = join(setup.dir, 'state', 'audit');
    const delivered = async () => {
      const got = [...(await exported(out)).values()].flat();
      return (await auditLines(auditDir)).every((l) => got.includes(l));
    };
    const first = await setup.serve(env);
    for (let i = 0; i < 3; i++) await chat(first.base, i);
    await until('the first records at the collector', delivered, 20_000);

    await receiver.down();
    for (let i = 3; i < 8; i++) await chat(first.base, i);
    const metrics = async (base: string) => (await (await request(`${base.replace(/\/v1$/, '')}/metrics`)).body.text());
    await until('a lag and failed exports on /metrics', async () => {
      const m = await metrics(first.base);
      return /^tresor_attest_otlp_lag_records [1-9]/m.test(m) && /^tresor_attest_otlp_export_failures_total [1-9]/m.test(m);
    });
    expect(await delivered()).toBe(false);
    first.p.child.kill('SIGKILL');
    await first.p.exited;

    const second = await setup.serve(env);
    for (let i = 8; i < 10; i++) await chat(second.base, i);
    await receiver.up();
    await until('the backlog at the collector', delivered, 30_000);
    expect(await metrics(second.base)).toMatch(/^tresor_attest_otlp_dropped_records_total 0$/m);
    second.p.child.kill('SIGTERM');
    expect(await second.p.exited).toBe(0);
    await until('the closing checkpoint at the collector', delivered, 10_000);

    const text = await readFile(out, 'utf8');
    expect(text).toContain('"service.name"');
    expect(text).toContain('sidecar-e2e');
    expect(text).toContain('deployment.environment');
    expect(receiver.received.protobuf).toBeGreaterThan(0);
    expect(receiver.lastHeaders()).toMatchObject({ 'x-tenant': 'fleet-7', 'content-type': 'application/x-protobuf' });
    const v = spawnBin('tresor-verify', ['audit', '--otlp-json', out, '--audit-key', join(auditDir, 'audit.pub')]);
    expect(await v.exited, v.stdout()).toBe(0);
    expect(v.stdout()).toMatch(/^PASS$/m);
    expect(v.stdout()).toMatch(/^Instances: 1$/m);
    expect(v.stdout()).toMatch(new RegExp(`^instance [0-9a-f-]{36} \\(sidecar-e2e\\): PASS, seq 1\\.\\.${(await auditLines(auditDir)).length}, `, 'm'));
    // The same export with one record's verdict edited on the way fails with a code.
    expect(text).toMatch(/\\"verdict\\":\\"[a-z_]+\\"/);
    await writeFile(join(setup.dir, 'edited.jsonl'), text.replace(/(\\"verdict\\":\\")[a-z_]+/, '$1forged'));
    const bad = spawnBin('tresor-verify', ['audit', '--otlp-json', join(setup.dir, 'edited.jsonl')]);
    expect(await bad.exited, bad.stdout()).toBe(4);
    expect(bad.stdout()).toMatch(/^FAIL ERR_AUDIT_OTLP_HASH_MISMATCH: /m);
  });
});
