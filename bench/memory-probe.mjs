// Where the daemon's memory goes at 1,000 open streams, step by step: its RSS and V8 heap spaces
// (from its /metrics) idle, after sse-c1000's warm-up, with every stream open, and after the
// streams' receipts are recorded. The bench's RSS per open stream is (peak RSS − idle RSS) / 1,000;
// this shows which part of it is live, which is V8 garbage not yet collected (docs/benchmarks.md).
// Usage: npm run build && node bench/memory-probe.mjs [ROUNDS]   (the simulator and daemon as in the bench)
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { startDaemonProcess, startSim } from './contenders.mjs';
import { clientFor, modelsOnce, runJson, runStreams } from './load.mjs';
import { rssKb as rssOf, settledRssKb } from './procfs.mjs';

const rounds = Number(process.argv[2] ?? 2);
const STREAMS = 1000;
const dir = mkdtempSync(join(os.tmpdir(), 'tresor-memprobe-'));
const sim = await startSim(dir, 40);
// As the sse-c1000 target: the daemon as configured by default (streams over HTTP/2 to the router).
const daemon = await startDaemonProcess(sim, dir, { receipts: 'audit' });
const rssKb = () => rssOf(daemon.pid);

async function step(label) {
  const text = await (await request(`${daemon.origin}/metrics`)).body.text();
  const mb = (re) => Number(re.exec(text)?.[1] ?? NaN) / 1024 / 1024;
  const space = (name, kind) => mb(new RegExp(`^tresor_attest_nodejs_heap_space_size_${kind}_bytes\\{space="${name}"\\} (\\S+)$`, 'm'));
  return {
    label,
    rss: rssKb(),
    heapUsed: mb(/^tresor_attest_nodejs_heap_size_used_bytes (\S+)$/m),
    oldUsed: space('old', 'used'),
    oldTotal: space('old', 'total'),
    newTotal: space('new', 'total'),
    external: mb(/^tresor_attest_nodejs_external_memory_bytes (\S+)$/m),
  };
}

// Idle once settled, as the bench's sse-c1000 (a fresh daemon sheds start-up memory for about two seconds).
await settledRssKb(daemon.pid);
const steps = [await step('idle')];
const client = clientFor(daemon, STREAMS);
try {
  // sse-c1000's warm-up (bench/scenarios.mjs): ramped GET /v1/models, then 100 completions.
  for (const c of [100, 200, 400, 800, STREAMS]) await runJson(client, { count: c, concurrency: c, maxMs: 60_000, once: modelsOnce });
  await runJson(client, { count: 100, concurrency: 100, maxMs: 60_000 });
  steps.push(await step('warmed up'));
  for (let round = 1; round <= rounds; round++) {
    let open;
    await runStreams(client, { count: STREAMS, concurrency: STREAMS, maxMs: 60_000, onOpen: (n) => void (n === STREAMS && (open = step(`${STREAMS} open (${round})`))) });
    steps.push(await open);
    await daemon.settle();
    steps.push(await step(`recorded (${round})`));
  }
} finally {
  await client.close();
  await daemon.stop();
  await sim.stop();
  rmSync(dir, { recursive: true, force: true });
}
const idle = steps[0].rss;
const f = (v) => v.toFixed(1);
process.stdout.write('| step | RSS over idle, KB per stream | V8 heap used MB | old space used / committed MB | new space committed MB | external MB |\n| --- | ---: | ---: | ---: | ---: | ---: |\n');
for (const s of steps) process.stdout.write(`| ${s.label} | ${f((s.rss - idle) / STREAMS)} | ${f(s.heapUsed)} | ${f(s.oldUsed)} / ${f(s.oldTotal)} | ${f(s.newTotal)} | ${f(s.external)} |\n`);
