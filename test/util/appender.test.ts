import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { GroupAppender, lineBytes, linesToBytes, type Line } from '../../src/util/appender.js';

const dirs: string[] = [];
afterEach(async () => {
  while (dirs.length) await rm(dirs.pop() as string, { recursive: true, force: true });
});

async function file(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'tresor-appender-'));
  dirs.push(d);
  return join(d, 'log.jsonl');
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('GroupAppender', () => {
  test('lines appended in one tick are committed together, in order, and are in the file when append resolves', async () => {
    const path = await file();
    const a = new GroupAppender(path);
    await Promise.all(Array.from({ length: 50 }, (_, i) => a.append(`{"n":${i}}`)));
    expect((await readFile(path, 'utf8')).trim().split('\n')).toEqual(Array.from({ length: 50 }, (_, i) => `{"n":${i}}`));
    await a.append('{"n":"after"}');
    expect((await readFile(path, 'utf8')).endsWith('{"n":"after"}\n')).toBe(true);
    expect(a.written).toBe(Buffer.byteLength(await readFile(path, 'utf8')));
    await a.close();
  });

  test('with a commit window, non-urgent appends wait for it and share one commit; an urgent one cuts it short and takes them along', async () => {
    const path = await file();
    const a = new GroupAppender(path, { commitWindowMs: 300 });
    const t0 = Date.now();
    const done: Record<string, number> = {};
    const track = (name: string, p: Promise<void>) => p.then(() => (done[name] = Date.now() - t0));
    const first = track('first', a.append('first', { urgent: false }));
    await sleep(20);
    const second = track('second', a.append('second', { urgent: false }));
    await Promise.all([first, second]);
    // Both waited for the window, and resolved together (one commit).
    expect(done.first).toBeGreaterThanOrEqual(280);
    expect(Math.abs((done.first as number) - (done.second as number))).toBeLessThan(50);

    const t1 = Date.now();
    const lazy = a.append('lazy', { urgent: false }).then(() => Date.now() - t1);
    await sleep(20);
    const urgent = a.append('urgent').then(() => Date.now() - t1);
    const [lazyMs, urgentMs] = await Promise.all([lazy, urgent]);
    expect(urgentMs).toBeLessThan(250);
    expect(lazyMs).toBeLessThan(250);
    expect((await readFile(path, 'utf8')).split('\n').filter(Boolean)).toEqual(['first', 'second', 'lazy', 'urgent']);
    await a.close();
  });

  test('close waits for appends still inside their window', async () => {
    const path = await file();
    const a = new GroupAppender(path, { commitWindowMs: 100 });
    const p = a.append('pending', { urgent: false });
    await a.close();
    await p;
    expect(await readFile(path, 'utf8')).toBe('pending\n');
  });
});

describe('linesToBytes: lines written part by part into one buffer', () => {
  test('the same bytes as the joined text with a newline after each line, whatever the characters', () => {
    const lines: Line[] = ['{"a":1}', '', 'caf\u00e9 \u{1F600} \ud800 lone', ['{"jws":"', 'x'.repeat(9000), '"}'], ['', ''], '\u0000\n'];
    const joined = `${lines.map((l) => (typeof l === 'string' ? l : l.join(''))).join('\n')}\n`;
    expect(linesToBytes(lines).equals(Buffer.from(joined, 'utf8'))).toBe(true);
    expect(linesToBytes(lines, Buffer.byteLength(joined)).equals(Buffer.from(joined, 'utf8'))).toBe(true);
    expect(lines.reduce((n, l) => n + lineBytes(l) + 1, 0)).toBe(Buffer.byteLength(joined));
    expect(linesToBytes([]).length).toBe(0);
  });
});
