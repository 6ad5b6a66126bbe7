// Where a process spent its CPU, from a V8 .cpuprofile (node --cpu-prof): the top functions by
// self time (share of busy time, idle excluded) and the daemon's own functions (dist/) by total
// time including callees. Usage: node bench/profile-summary.mjs FILE.cpuprofile [N]
import { readFileSync } from 'node:fs';

const [file, n = '20'] = process.argv.slice(2);
const profile = JSON.parse(readFileSync(file, 'utf8'));
const byId = new Map(profile.nodes.map((node) => [node.id, node]));
const self = new Map();
for (let i = 0; i < profile.samples.length; i++) self.set(profile.samples[i], (self.get(profile.samples[i]) ?? 0) + (profile.timeDeltas[i] ?? 0));

const keyOf = (node) => {
  const { functionName, url, lineNumber } = node.callFrame;
  const where = url ? `${url.replace(/^file:\/\/.*?\/(node_modules|dist|bench)\//, '$1/')}:${lineNumber + 1}` : '';
  return `${functionName || '(anonymous)'} ${where}`.trim();
};
const idle = [...self].filter(([id]) => byId.get(id).callFrame.functionName === '(idle)').reduce((a, [, us]) => a + us, 0);
const total = [...self.values()].reduce((a, b) => a + b, 0);
const busy = total - idle;

const selfBy = new Map();
for (const [id, us] of self) if (byId.get(id).callFrame.functionName !== '(idle)') selfBy.set(keyOf(byId.get(id)), (selfBy.get(keyOf(byId.get(id))) ?? 0) + us);

// Total (inclusive) time per function, each sample counted once per function on its stack.
const parent = new Map();
for (const node of profile.nodes) for (const c of node.children ?? []) parent.set(c, node.id);
const inclusive = new Map();
for (const [id, us] of self) {
  const seen = new Set();
  for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
    const k = keyOf(byId.get(cur));
    if (!k.includes(' dist/') || seen.has(k)) continue;
    seen.add(k);
    inclusive.set(k, (inclusive.get(k) ?? 0) + us);
  }
}

const pct = (us) => ((100 * us) / busy).toFixed(1);
console.log(`sampled ${(total / 1000).toFixed(0)} ms, busy ${(busy / 1000).toFixed(0)} ms (idle excluded below)\n`);
console.log('| self % of busy | self ms | function |\n|---:|---:|---|');
for (const [k, us] of [...selfBy].sort((a, b) => b[1] - a[1]).slice(0, Number(n))) console.log(`| ${pct(us)} | ${(us / 1000).toFixed(0)} | \`${k}\` |`);
console.log('\n| total % of busy | total ms | daemon function (dist/, callees included) |\n|---:|---:|---|');
for (const [k, us] of [...inclusive].sort((a, b) => b[1] - a[1]).slice(0, 12)) console.log(`| ${pct(us)} | ${(us / 1000).toFixed(0)} | \`${k}\` |`);
