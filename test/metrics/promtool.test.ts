import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startHarness, type Harness } from '../helpers/harness.js';
import { ROOT } from '../helpers/spawn.js';
import { parsePrometheusText } from './prom-text.js';

/** Debian's promtool (package prometheus; `npm test`'s pretest installs it); PROMTOOL_PATH overrides. */
function findPromtool(): string | undefined {
  const candidate = process.env.PROMTOOL_PATH ?? 'promtool';
  const r = spawnSync(candidate, ['--version'], { encoding: 'utf8' });
  return r.status === 0 ? candidate : undefined;
}
const PROMTOOL = findPromtool();
if (!PROMTOOL) {
  console.warn('promtool checks SKIPPED: no promtool here. Install it with `npm run setup:test-tools` (Debian: apt-get install -y prometheus) or set PROMTOOL_PATH.');
}
const ALERTS = join(ROOT, 'examples/prometheus/alerts.yaml');

/** `promtool ARGS` with `input` on stdin: its exit status and everything it printed. */
function promtool(args: string[], input?: string): { status: number | null; output: string } {
  const r = spawnSync(PROMTOOL as string, args, { encoding: 'utf8', ...(input !== undefined ? { input } : {}) });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

describe.skipIf(!PROMTOOL)('the ecosystem\'s own checks (promtool)', () => {
  let healthy: Harness;
  let failing: Harness;
  beforeAll(async () => {
    [healthy, failing] = await Promise.all([startHarness(), startHarness({ evidenceFaults: { wrongMeasurement: true } })]);
  });
  afterAll(async () => {
    await Promise.all([healthy?.close(), failing?.close()]);
  });

  async function scrape(h: Harness): Promise<string> {
    return (await fetch(`${h.origin}/metrics`)).text();
  }

  test('/metrics passes `promtool check metrics`, after real traffic and with a refused router', async () => {
    const client = new OpenAI({ baseURL: healthy.base, apiKey: 'app-key', maxRetries: 0 });
    const chat = await client.chat.completions.create({ model: 'eu/tresor/gpt-oss-120b', messages: [{ role: 'user', content: 'hi' }] });
    const id = (chat as unknown as { tresor: { receipt_id: string } }).tresor.receipt_id;
    await (await fetch(`${healthy.origin}/receipts/${id}?wait=10`)).arrayBuffer();
    await (await fetch(`${failing.base}/models`)).arrayBuffer();
    for (const h of [healthy, failing]) {
      const text = await scrape(h);
      expect(text).toContain('tresor_attest_nodejs_active_handles{'); // the per-type gauges stay
      const check = promtool(['check', 'metrics'], text);
      expect(check.output).toBe('');
      expect(check.status).toBe(0);
    }
    // The check is real: prom-client's own `_total` gauges, as served before, are refused.
    const bad = promtool(['check', 'metrics'], '# HELP tresor_attest_nodejs_active_handles_total Total.\n# TYPE tresor_attest_nodejs_active_handles_total gauge\ntresor_attest_nodejs_active_handles_total 3\n');
    expect(bad.output).toContain('non-counter metrics should not have "_total" suffix');
  });

  test('examples/prometheus/alerts.yaml passes `promtool check rules`, its unit tests pass, and it names only series the daemon serves', async () => {
    const check = promtool(['check', 'rules', ALERTS]);
    expect(check.output).toMatch(/SUCCESS: \d+ rules found/);
    expect(check.status).toBe(0);
    const unit = promtool(['test', 'rules', join(ROOT, 'examples/prometheus/alerts.test.yaml')]);
    expect(unit.output).toContain('SUCCESS');
    expect(unit.status).toBe(0);
    const served = new Set([...parsePrometheusText(await scrape(healthy)).keys(), ...parsePrometheusText(await scrape(failing)).keys()]);
    const named = new Set(readFileSync(ALERTS, 'utf8').match(/tresor_attest_[a-z0-9_]+/g));
    expect(named.size).toBeGreaterThan(5);
    for (const n of named) expect(served, n).toContain(n);
  });
});

