import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { processSetup, type ProcessSetup } from '../helpers/process-daemon.js';
import { parseStrictJson } from '../helpers/strict-json.js';

let setup: ProcessSetup;
beforeAll(async () => {
  setup = await processSetup('tresor-log-stop-');
});
afterAll(() => setup.close());

describe('the access lines on standard output (gathered into ~4 KiB writes) at a graceful stop', () => {
  test('every line logged just before SIGTERM is on stdout after the stop, each one whole strict JSON, "stopped" last', async () => {
    const { p, base } = await setup.serve();
    const chat = () =>
      request(`${base}/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'eu/tresor/gpt-oss-120b', messages: [{ role: 'user', content: 'hi' }] }),
      }).then(async (r) => {
        await r.body.dump();
        return r.statusCode;
      });
    // A few lines (well below 4 KiB: held in the buffer), the signal right after the last answer.
    const statuses = await Promise.all(Array.from({ length: 5 }, chat));
    p.child.kill('SIGTERM');
    expect(statuses).toEqual([200, 200, 200, 200, 200]);
    expect(await p.exited).toBe(0);
    const records = p
      .stdout()
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => parseStrictJson(l) as { msg?: string; path?: string; status?: number });
    expect(records.filter((r) => r.msg === 'request' && r.path === '/v1/chat/completions' && r.status === 200)).toHaveLength(5);
    expect(records.at(-1)?.msg).toBe('stopped');
  });
});
