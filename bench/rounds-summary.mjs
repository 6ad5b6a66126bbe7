// Per-round figures of a bench run (bench/results/latest.json or a copy): own CPU µs per request,
// and its main-thread and other-thread parts, per contender and round (the medians hide how noisy
// the rounds were). Usage: node bench/rounds-summary.mjs [FILE]
import { readFileSync } from 'node:fs';

const j = JSON.parse(readFileSync(process.argv[2] ?? new URL('./results/latest.json', import.meta.url), 'utf8'));
const r0 = (xs, k) => xs.map((x) => (x[k] == null ? '–' : Math.round(x[k]))).join(' ');
for (const s of j.scenarios) {
  if (!s.runs || Array.isArray(s.runs)) continue;
  console.log(`${s.name}: own CPU µs/req [per round] | main | other threads`);
  for (const [c, runs] of Object.entries(s.runs)) console.log(`  ${c.padEnd(38)} [${r0(runs, 'cpuUsPerReq')}] | [${r0(runs, 'mainUsPerReq')}] | [${r0(runs, 'othersUsPerReq')}]`);
}
