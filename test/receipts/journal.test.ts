import { appendFile, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { ReceiptJournal } from '../../src/receipts/journal.js';
import { job } from '../helpers/jobs.js';


describe('ReceiptJournal', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'journal-'));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  test('pending jobs survive a reopen; done ones do not; a torn last line is ignored', async () => {
    const { journal } = await ReceiptJournal.open(dir);
    await Promise.all([1, 2, 3].map((n) => journal.add(job(n))));
    await journal.done(job(2).job);
    // No close(): a crash. Then a torn half-line from a write cut short.
    const file = (await readdir(dir)).find((f) => f.startsWith('journal-')) as string;
    await appendFile(join(dir, file), '{"op":"job","job":{"job":"torn');
    const { journal: again, pending } = await ReceiptJournal.open(dir);
    expect(pending.map((j) => j.request_id).sort()).toEqual(['req-1', 'req-3']);
    expect(again.size).toBe(2);
    // Reopening compacts into one new generation holding only the pending jobs.
    const files = (await readdir(dir)).filter((f) => f.startsWith('journal-'));
    expect(files).toHaveLength(1);
    const lines = (await readFile(join(dir, files[0] as string), 'utf8')).trim().split('\n');
    expect(lines).toHaveLength(2);
    await again.close();
    await journal.close();
  });

  test('files are 0600 in a 0700 directory and hold no secrets', async () => {
    const { journal } = await ReceiptJournal.open(join(dir, 'j'));
    await journal.add(job(1));
    await journal.close();
    const { stat } = await import('node:fs/promises');
    expect((await stat(join(dir, 'j'))).mode & 0o777).toBe(0o700);
    const f = (await readdir(join(dir, 'j')))[0] as string;
    expect((await stat(join(dir, 'j', f))).mode & 0o777).toBe(0o600);
    expect(await readFile(join(dir, 'j', f), 'utf8')).not.toMatch(/authorization|Bearer/i);
  });

  test('a done entry nobody waits for shares the next job\'s commit (one write) instead of a write of its own; an urgent one goes at once', async () => {
    // A long window, so that only the next job's commit (urgent) can end it within this test.
    const { journal } = await ReceiptJournal.open(dir, { commitWindowMs: 60_000 });
    await journal.add(job(1));
    const file = join(dir, (await readdir(dir)).find((f) => f.startsWith('journal-')) as string);
    const ops = async () => (await readFile(file, 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { op: string });
    let doneSettled = false;
    const done = journal.done(job(1).job, { urgent: false }).then(() => (doneSettled = true));
    await new Promise((r) => setTimeout(r, 50));
    expect(await ops()).toHaveLength(1); // held: not written on its own
    expect(doneSettled).toBe(false);
    await journal.add(job(2)); // urgent: commits at once, taking the held done with it
    await done;
    expect((await ops()).map((e) => e.op)).toEqual(['job', 'done', 'job']);
    await journal.done(job(2).job, { urgent: true });
    expect((await ops()).map((e) => e.op)).toEqual(['job', 'done', 'job', 'done']);
    await journal.close();
  });

  test('compaction under load keeps every pending job and drops the done ones', async () => {
    const { journal } = await ReceiptJournal.open(dir);
    // ~5 MB of entries forces at least one compaction (at 4 MB).
    for (let round = 0; round < 20; round++) {
      const batch = Array.from({ length: 500 }, (_, i) => job(round * 500 + i));
      await Promise.all(batch.map((j) => journal.add(j)));
      await Promise.all(batch.filter((_, i) => i % 100 !== 0).map((j) => journal.done(j.job)));
    }
    expect(journal.size).toBe(100);
    await journal.close();
    const { pending } = await ReceiptJournal.open(dir);
    expect(pending).toHaveLength(100);
    expect(new Set(pending.map((j) => j.job)).size).toBe(100);
  });
});
