// Where a contender's bytes were allocated in one measured window (BENCH_ALLOC_DIR, bench/alloc-preload.mjs):
// KB per request by the nearest `dist/` frame (the daemon's own function that allocated, or called
// what did), largest first, as a Markdown table. With --base, the same for another file (e.g. the
// baseline's row) beside it. Usage: node bench/alloc-summary.mjs FILE [--base FILE] [--per N] [--top N]
// (N defaults to the request count in the file's name, `...-n<requests>.json`).
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { profileNodes } from './alloc.mjs';

const { values, positionals } = parseArgs({ allowPositionals: true, options: { base: { type: 'string' }, per: { type: 'string' }, top: { type: 'string', default: '30' } } });
if (positionals.length !== 1) {
  process.stderr.write('usage: node bench/alloc-summary.mjs FILE [--base FILE] [--per N] [--top N]\n');
  process.exit(2);
}

// By function and file, without the line: the same site in two trees (--base) lines up although lines moved.
const siteOf = ({ functionName, url }) => `${functionName || '(anonymous)'} ${url.replace(/^(?:file:\/\/)?.*?\/(dist|node_modules|bench)\//, '$1/')}`;

/** KB per request by nearest dist/ frame (else the nearest node_modules/ frame, else `(node internals)`). */
function sites(file) {
  const w = JSON.parse(readFileSync(file, 'utf8'));
  const per = Number(values.per ?? /-n(\d+)\.json$/.exec(file)?.[1] ?? 1);
  const parent = new Map();
  for (const node of profileNodes(w.profile)) for (const c of node.children ?? []) parent.set(c, node);
  const out = new Map();
  let total = 0;
  for (const node of profileNodes(w.profile)) {
    if (!node.selfSize) continue;
    total += node.selfSize;
    let site;
    let fallback;
    for (let cur = node; cur && !site; cur = parent.get(cur)) {
      if (cur.callFrame.url.includes('/dist/')) site = siteOf(cur.callFrame);
      else if (!fallback && cur.callFrame.url.includes('/node_modules/')) fallback = siteOf(cur.callFrame);
    }
    const k = site ?? fallback ?? '(node internals)';
    out.set(k, (out.get(k) ?? 0) + node.selfSize);
  }
  const kb = (b) => b / 1024 / per;
  return { per, gc: w.gc, total: kb(total), by: new Map([...out].map(([k, b]) => [k, kb(b)])) };
}

const a = sites(positionals[0]);
const b = values.base ? sites(values.base) : undefined;
const perK = (s) => `${((1000 * s.gc.minor) / s.per).toFixed(1)} scavenges, ${((1000 * s.gc.major) / s.per).toFixed(2)} mark-compacts per 1,000 requests`;
console.log(`${positionals[0]}: ${a.total.toFixed(1)} KB allocated per request over ${a.per} requests; ${perK(a)}`);
if (b) console.log(`base ${values.base}: ${b.total.toFixed(1)} KB per request over ${b.per}; ${perK(b)}`);
console.log(b ? '\n| KB/req base | KB/req | site (nearest dist/ frame) |\n|---:|---:|---|' : '\n| KB/req | site (nearest dist/ frame) |\n|---:|---|');
const keys = [...new Set([...a.by.keys(), ...(b ? b.by.keys() : [])])].sort((x, y) => Math.max(b?.by.get(y) ?? 0, a.by.get(y) ?? 0) - Math.max(b?.by.get(x) ?? 0, a.by.get(x) ?? 0));
for (const k of keys.slice(0, Number(values.top))) {
  const cell = (s) => (s.by.get(k) ?? 0).toFixed(2);
  console.log(b ? `| ${cell(b)} | ${cell(a)} | \`${k}\` |` : `| ${cell(a)} | \`${k}\` |`);
}
