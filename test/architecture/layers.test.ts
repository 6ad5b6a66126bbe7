import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, test } from 'vitest';

const root = new URL('../..', import.meta.url).pathname;
const src = join(root, 'src');

/** The layer list of docs/layers.md, bottom first: each entry the `src/` directories (or files) on it. */
function declaredLayers(markdown: string): string[][] {
  return markdown
    .split('\n')
    .filter((line) => /^\d+\. /.test(line))
    .map((line) => [...line.split(':')[0]!.matchAll(/`([^`]+)`/g)].map((m) => m[1]!));
}

/** The top-level unit of `src/` a path belongs to: its first directory, or the file itself. */
const unitOf = (path: string) => relative(src, path).split('/')[0]!.replace(/\.js$/, '.ts');

/** Every relative module specifier a TypeScript source imports or re-exports, dynamic imports included. */
function importsOf(text: string): string[] {
  const re = /\b(?:import|export)\s[^'"]*?\bfrom\s*['"](\.[^'"]+)['"]|\bimport\s*\(\s*['"](\.[^'"]+)['"]\s*\)|\bimport\s+['"](\.[^'"]+)['"]/g;
  return [...text.matchAll(re)].map((m) => (m[1] ?? m[2] ?? m[3])!);
}

/** Imports that run upward or sideways per `layers`, and units the list does not place. */
function violations(files: readonly { path: string; text: string }[], layers: readonly string[][]): string[] {
  const rank = new Map(layers.flatMap((units, i) => units.map((u) => [u, i] as const)));
  const out: string[] = [];
  for (const f of files) {
    const from = unitOf(f.path);
    if (!rank.has(from)) {
      out.push(`${relative(root, f.path)}: src/${from} is on no layer of docs/layers.md`);
      continue;
    }
    for (const spec of importsOf(f.text)) {
      const to = unitOf(resolve(dirname(f.path), spec));
      if (to === from || to.startsWith('..')) continue;
      const [a, b] = [rank.get(from)!, rank.get(to)];
      if (b === undefined || b >= a) out.push(`${relative(root, f.path)} imports ${spec} (${to} is ${b === undefined ? 'on no layer' : b === a ? 'on the same layer' : 'above'})`);
    }
  }
  return out;
}

function sources(dir: string): { path: string; text: string }[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return sources(p);
    return p.endsWith('.ts') ? [{ path: p, text: readFileSync(p, 'utf8') }] : [];
  });
}

const layers = declaredLayers(readFileSync(join(root, 'docs/layers.md'), 'utf8'));

describe('layers (docs/layers.md)', () => {
  test('the list places every top-level directory and file of src/ exactly once', () => {
    const placed = layers.flat();
    expect(new Set(placed).size).toBe(placed.length);
    const units = readdirSync(src).filter((n) => !n.endsWith('.d.ts'));
    expect([...placed].sort()).toEqual([...units].sort());
  });

  test('no import in src/ runs upward or sideways', () => {
    expect(violations(sources(src), layers)).toEqual([]);
  });

  test('the check catches upward, sideways and dynamic imports, type-only ones included', () => {
    const at = (p: string) => join(src, p);
    const files = [
      { path: at('envelope/attest.ts'), text: "import { openTlsSocket } from '../proxy/connector.js';" },
      { path: at('receipts/pipeline.ts'), text: "import type { ExchangeInfo } from '../proxy/hooks.js';" },
      { path: at('util/fetch.ts'), text: "export { splitPemBlocks } from '../x509/certificate.js';" },
      { path: at('near/index.ts'), text: "const m = await import('../aci/index.js');" },
      { path: at('transport/connector.ts'), text: "import { splitPemBlocks } from '../util/pem.js';\nimport { x } from './hooks.js';" },
    ];
    expect(violations(files, layers)).toEqual([
      'src/envelope/attest.ts imports ../proxy/connector.js (proxy is above)',
      'src/receipts/pipeline.ts imports ../proxy/hooks.js (proxy is above)',
      'src/util/fetch.ts imports ../x509/certificate.js (x509 is above)',
      'src/near/index.ts imports ../aci/index.js (aci is on the same layer)',
    ]);
  });
});
