// npm run bench [-- --quick] [--only SCENARIO[,SCENARIO]] [--contenders NAME[,NAME]] [--rounds N] [--out FILE]
// Every forwarding scenario runs the contenders in turn (A B C D, A B C D, ...) and reports the
// medians over the rounds with the ratio to the references (direct for latency, the bare passthrough
// for CPU and throughput). Output: a table on stdout and bench/results/latest.json.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { CONTENDERS, startSim } from './contenders.mjs';
import { medianOfRounds, render } from './report.mjs';
import { buildScenarios } from './scenarios.mjs';
import { TARGETS } from './targets.mjs';

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    only: { type: 'string' },
    contenders: { type: 'string' },
    rounds: { type: 'string' },
    out: { type: 'string', default: new URL('results/latest.json', import.meta.url).pathname },
    'chunk-interval-ms': { type: 'string', default: '5' },
  },
});
const quick = args.quick;
const list = (s) => s?.split(',').map((x) => x.trim()).filter(Boolean);
const only = list(args.only);
const wanted = list(args.contenders);
const scenarios = buildScenarios(quick).filter((s) => !only || only.includes(s.name));
if (only && scenarios.length !== only.length) {
  process.stderr.write(`unknown scenario in --only; known: ${buildScenarios(quick).map((s) => s.name).join(', ')}\n`);
  process.exit(2);
}

// BENCH_ALLOC_DIR=DIR: bytes allocated and GCs per request in the JSON rows (bench/alloc-preload.mjs, loaded into the Node contenders).
if (process.env.BENCH_ALLOC_DIR) {
  mkdirSync(process.env.BENCH_ALLOC_DIR, { recursive: true });
  const preload = new URL('alloc-preload.mjs', import.meta.url).pathname;
  if (!process.env.BENCH_NODE_ARGS?.includes(preload)) process.env.BENCH_NODE_ARGS = `${process.env.BENCH_NODE_ARGS ?? ''} --import ${preload}`.trim();
}

const started = Date.now();
const log = (msg) => process.stderr.write(`[bench ${((Date.now() - started) / 1000).toFixed(1)}s] ${msg}\n`);
const dir = mkdtempSync(join(os.tmpdir(), 'tresor-bench-'));
const notes = [];
const instances = new Map();
let sim;

async function main() {
  sim = await startSim(dir, Number(args['chunk-interval-ms']));
  log(`simulator ${sim.url} (pid ${sim.pid})`);
  const contenders = [];
  for (const c of CONTENDERS.filter((c) => !wanted || wanted.includes(c.name))) {
    const a = c.available(sim, dir);
    if (a.why) notes.push(`${c.name}: ${a.why}`);
    if (a.ok) contenders.push(c);
  }
  const results = [];
  for (const s of scenarios) {
    log(`scenario ${s.name}`);
    const t0 = Date.now();
    if (s.kind === 'micro') {
      results.push({ name: s.name, title: s.title, metrics: s.metrics, rows: { library: s.run({ quick }) } });
      continue;
    }
    // --rounds N overrides the scenario's own count (more rounds: steadier medians on a noisy machine).
    const rounds = args.rounds ? Math.max(1, Number(args.rounds)) : s.rounds(quick);
    // A scenario with its own simulator gets its own contender processes, stopped at its end.
    const scenarioSim = s.own ? await startSim(mkdtempSync(join(dir, 'sim-')), s.own.chunkIntervalMs) : sim;
    const scoped = new Map();
    const runs = new Map(contenders.map((c) => [c.name, []]));
    const states = new Map(contenders.map((c) => [c.name, {}]));
    const failed = new Set();
    for (let round = 1; round <= rounds; round++) {
      for (const c of contenders) {
        if (failed.has(c.name) || (c.only && !c.only.includes(s.name))) continue;
        let target;
        try {
          const pool = s.own ? scoped : instances;
          if (s.fresh) target = await c.start(scenarioSim, dir);
          else {
            if (!pool.has(c.name)) pool.set(c.name, await c.start(scenarioSim, dir));
            target = pool.get(c.name);
          }
          const t1 = Date.now();
          const m = await s.run({ target, contender: c, sim: scenarioSim, dir, quick, round, state: states.get(c.name) });
          runs.get(c.name).push(m);
          log(`  round ${round} ${c.name}: ${((Date.now() - t1) / 1000).toFixed(1)} s`);
        } catch (e) {
          failed.add(c.name);
          notes.push(`${s.name} / ${c.name}: ${e.message.split('\n')[0]}`);
          log(`  ${c.name} failed: ${e.message}`);
        } finally {
          if (s.fresh) await target?.stop();
        }
      }
    }
    for (const c of contenders) await s.done?.(states.get(c.name));
    for (const i of scoped.values()) await i.stop();
    if (scenarioSim !== sim) await scenarioSim.stop();
    const rows = {};
    for (const [name, r] of runs) if (r.length) rows[name] = medianOfRounds(r);
    results.push({ name: s.name, title: s.title, rounds, seconds: Math.round((Date.now() - t0) / 1000), metrics: s.metrics, rows, runs: Object.fromEntries(runs) });
  }
  const result = {
    startedAt: new Date(started).toISOString(),
    quick,
    elapsedSeconds: Math.round((Date.now() - started) / 1000),
    machine: { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model ?? '?', node: process.version, kernel: os.release(), memGb: Math.round(os.totalmem() / 2 ** 30) },
    upstream: { simulator: 'deterministic: 1 KB JSON text, 50-chunk SSE', chunkIntervalMs: Number(args['chunk-interval-ms']) },
    contenders: contenders.map((c) => ({ name: c.name, note: c.note })),
    notes,
    scenarios: results,
  };
  result.targets = TARGETS.map((t) => t(result));
  mkdirSync(dirname(args.out), { recursive: true });
  writeFileSync(args.out, `${JSON.stringify(result, null, 2)}\n`);
  process.stdout.write(`${render(result)}\n\nJSON: ${args.out}\n`);
}

try {
  await main();
} finally {
  for (const i of instances.values()) await i.stop().catch(() => undefined);
  await sim?.stop().catch(() => undefined);
  // BENCH_KEEP_DIR=1 keeps the run's directory (contender logs, state) for diagnosis.
  if (process.env.BENCH_KEEP_DIR) process.stderr.write(`kept ${dir}\n`);
  else rmSync(dir, { recursive: true, force: true });
}
