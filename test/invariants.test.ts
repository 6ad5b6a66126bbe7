import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, test } from 'vitest';

const root = new URL('..', import.meta.url).pathname;

function walk(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...walk(p));
    else if (p.endsWith('.ts')) out.push(p);
  }
  return out;
}

const sources = walk(join(root, 'src')).map((p) => ({ path: relative(root, p), text: readFileSync(p, 'utf8') }));

describe('source invariants', () => {
  test('only verify modules mint Verified<T> (policy never sees unverified input)', () => {
    const offenders = sources
      .filter((f) => /\basVerified\(/.test(f.text))
      .map((f) => f.path)
      .filter((p) => p !== 'src/types.ts' && !/(^|\/)verify[^/]*\.ts$/.test(p) && !/\/verify\//.test(p));
    expect(offenders).toEqual([]);
  });

  test('no verifier reads the wall clock or global fetch (time and network are injected)', () => {
    const verifierDirs = ['src/evidence/', 'src/x509/chain.ts', 'src/envelope/verify', 'src/receipts/claims', 'src/receipts/jws', 'src/aci/', 'src/near/'];
    const offenders = sources
      .filter((f) => verifierDirs.some((d) => f.path.startsWith(d)))
      .filter((f) => /\bDate\.now\(\)|new Date\(\)|\bglobalThis\.fetch\b|(?<![.\w])fetch\(/.test(f.text))
      .map((f) => f.path);
    expect(offenders).toEqual([]);
  });

  test('no placeholder command is left registered', () => {
    const offenders = sources.filter((f) => f.text.includes('PLACEHOLDER: replaced by')).map((f) => f.path);
    expect(offenders).toEqual([]);
  });

  test('error codes follow ERR_<AREA>_<WHAT>', () => {
    const bad: string[] = [];
    for (const f of sources) {
      for (const m of f.text.matchAll(/new (?:Malformed|Verification|Fetch|Upstream|Usage|Config)Error\(\s*'([^']+)'/g)) {
        if (!/^ERR_[A-Z0-9]+(_[A-Z0-9]+)+$/.test(m[1] as string)) bad.push(`${f.path}: ${m[1]}`);
      }
    }
    expect(bad).toEqual([]);
  });
});
