// Summarise V8 heap snapshots (from BENCH_HEAP_SNAPSHOT_DIR: sse-c1000 takes one before its streams
// and one with every stream open): self size by object type and constructor, largest first, as a
// Markdown table. With a baseline, what grew from it; with --per N, also divided by N (the streams
// open at the peak). Usage: node bench/heap-summary.mjs PEAK.heapsnapshot [--base IDLE.heapsnapshot] [--per N]
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

const { values, positionals } = parseArgs({ allowPositionals: true, options: { base: { type: 'string' }, per: { type: 'string' } } });
if (positionals.length !== 1) {
  process.stderr.write('usage: node bench/heap-summary.mjs PEAK.heapsnapshot [--base IDLE.heapsnapshot] [--per N]\n');
  process.exit(2);
}
const per = Number(values.per ?? 0);

function groups(file) {
  const snap = JSON.parse(readFileSync(file, 'utf8'));
  const { node_fields: fields, node_types: [types] } = snap.snapshot.meta;
  const F = fields.length;
  const [iType, iName, iSize] = ['type', 'name', 'self_size'].map((f) => fields.indexOf(f));
  const out = new Map();
  for (let i = 0; i < snap.nodes.length; i += F) {
    const type = types[snap.nodes[i + iType]];
    // Strings and code are grouped by type; objects, closures and native objects by constructor name.
    const name = ['object', 'closure', 'native', 'hidden'].includes(type) ? `${type}: ${String(snap.strings[snap.nodes[i + iName]]).slice(0, 60)}` : type;
    const g = out.get(name) ?? { size: 0, count: 0 };
    g.size += snap.nodes[i + iSize];
    g.count++;
    out.set(name, g);
  }
  return out;
}

const peak = groups(positionals[0]);
const base = values.base ? groups(values.base) : new Map();
const rows = [...peak].map(([name, g]) => [name, { size: g.size - (base.get(name)?.size ?? 0), count: g.count - (base.get(name)?.count ?? 0) }]);
const total = rows.reduce((a, [, g]) => a + g.size, 0);
rows.sort((a, b) => b[1].size - a[1].size);
const kb = (b) => (b / 1024).toFixed(1);
const lines = [
  `${values.base ? 'heap growth over the baseline' : 'heap'}: ${kb(total)} KB${per ? `; per stream (${per} open): ${kb(total / per)} KB` : ''}`,
  '',
  `| ${values.base ? 'grown' : 'self'} KB | % | count | ${per ? 'KB per stream | ' : ''}type: constructor |`,
  `|---:|---:|---:|${per ? '---:|' : ''}---|`,
  ...rows.slice(0, 25).map(([name, g]) => `| ${kb(g.size)} | ${((100 * g.size) / total).toFixed(1)} | ${g.count} | ${per ? `${(g.size / 1024 / per).toFixed(2)} | ` : ''}\`${name.replace(/\|/g, '\\|')}\` |`),
];
process.stdout.write(`${lines.join('\n')}\n`);
