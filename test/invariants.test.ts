import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, test } from 'vitest';
import { verdictHeaderFamily } from '../src/proxy/headers.js';

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

  test("every X-Tresor-* header the daemon reports a check in is a verdict header (so the router's copies are dropped)", () => {
    // The X-Tresor-* names the daemon uses that are not verdicts: the router's data or the app's requests.
    const notVerdicts = new Set(['x-tresor-receipt-id', 'x-tresor-receipt', 'x-tresor-local-token', 'x-tresor-timeout-seconds', 'x-tresor-nonce']);
    for (const n of notVerdicts) expect(verdictHeaderFamily(n), n).toBeUndefined();
    const unclassified: string[] = [];
    for (const f of sources.filter((s) => /^src\/(attestation|receipts|proxy)\//.test(s.path))) {
      for (const m of f.text.matchAll(/['"`](x-tresor-[a-z0-9-]+)['"`]/gi)) {
        const name = (m[1] as string).toLowerCase();
        if (!notVerdicts.has(name) && verdictHeaderFamily(name) === undefined) unclassified.push(`${f.path}: ${name}`);
      }
    }
    expect(unclassified).toEqual([]);
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

describe('tracked tree', () => {
  test('no file tracked by git holds merge-conflict markers', () => {
    // Built from parts so this file does not match itself: a line that is exactly a marker, or a marker and a label.
    const marker = new RegExp(`^(${'<'.repeat(7)}|${'='.repeat(7)}|${'>'.repeat(7)})( .*)?$`, 'm');
    const files = execFileSync('git', ['ls-files', '-z'], { cwd: root, encoding: 'utf8' }).split('\0').filter((f) => f !== '');
    expect(files.length).toBeGreaterThan(50);
    const offenders = files.filter((f) => {
      let buf: Buffer;
      try {
        buf = readFileSync(join(root, f));
      } catch {
        return false; // deleted in the work tree but still in the index: nothing to read
      }
      return !buf.includes(0) && marker.test(buf.toString('utf8'));
    });
    expect(offenders).toEqual([]);
  });
});
