import { closeSync, openSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { BufferedLines } from '../../src/log/buffered.js';
import { accessLogger, createLogger, flushLogger } from '../../src/log/logger.js';
import { parseStrictJson } from '../helpers/strict-json.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const access = (i: number) => ({ reqId: `r${i}`, upstream: 'u', method: 'POST', path: '/v1/chat/completions', status: 200, requestBytes: 312, responseBytes: 1024, ms: 1.5 });

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tresor-log-buffered-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

/** A logger on a BufferedLines over a fresh file; `writes` counts the write(2) calls that reached it. */
function onFile(name: string, o = { bytes: 4096, maxDelayMs: 100 }) {
  const file = join(dir, name);
  const fd = openSync(file, 'w');
  const lines = new BufferedLines(fd, o);
  let writes = 0;
  lines.out.on('write', (n: number) => (writes += n > 0 ? 1 : 0));
  const logger = createLogger({ level: 'info', format: 'json', destination: lines });
  const read = () => readFileSync(file, 'utf8').split('\n').filter((l) => l !== '');
  return { logger, read, writes: () => writes, close: () => closeSync(fd) };
}

describe('access lines gathered into fewer writes (BufferedLines)', () => {
  test('access lines logged apart in time share writes of ~4 KiB; each is whole, strict JSON, in order', async () => {
    const f = onFile('gathered.log');
    const log = accessLogger(f.logger);
    // One line per event-loop turn with time between them: each would have been its own write(2) before.
    for (let i = 0; i < 60; i++) {
      log(access(i));
      await sleep(1);
    }
    await flushLogger(f.logger);
    const lines = f.read();
    expect(lines).toHaveLength(60);
    expect(lines.map((l) => (parseStrictJson(l) as { reqId: string }).reqId)).toEqual(Array.from({ length: 60 }, (_, i) => `r${i}`));
    // ~230 bytes a line: 60 lines are ~14 KB, so 4 or 5 writes (60 before).
    expect(f.writes()).toBeLessThanOrEqual(8);
    f.close();
  });

  test('any other line goes out at once, with the access lines before it; a lone access line within the delay', async () => {
    const f = onFile('urgent.log', { bytes: 4096, maxDelayMs: 150 });
    const log = accessLogger(f.logger);
    log(access(1));
    await sleep(40);
    expect(f.read()).toHaveLength(0); // held: below 4 KiB and the delay
    f.logger.warn({ event: 'x' }, 'something an operator must see');
    await sleep(40);
    expect(f.read().map((l) => (parseStrictJson(l) as { msg: string }).msg)).toEqual(['request', 'something an operator must see']);
    log(access(2));
    await sleep(400);
    expect(f.read()).toHaveLength(3);
    f.close();
  });
});
