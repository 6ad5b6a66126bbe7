import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { expect, test } from 'vitest';

test('the vectors are byte-identical to their published sources (test/vectors/README.md)', () => {
  const readme = readFileSync(new URL('./README.md', import.meta.url), 'utf8');
  const sums = [...readme.matchAll(/^([0-9a-f]{64})\s+(\S+)/gm)];
  expect(sums.length).toBe(28);
  for (const [, sum, file] of sums) {
    expect(createHash('sha256').update(readFileSync(new URL(`./${file}`, import.meta.url))).digest('hex'), file).toBe(sum);
  }
});
