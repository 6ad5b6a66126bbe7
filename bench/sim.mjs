// The upstream for every forwarding scenario: the simulated router in deterministic mode (TLS,
// 1 KB JSON replies, 50-chunk SSE streams at a fixed interval) with SNP evidence, in its own
// process so it does not share an event loop with the load generator.
// Usage: node bench/sim.mjs DIR CHUNK_INTERVAL_MS  → prints one JSON line with url, caFile, rootFile, testRootsFile, bundleUrl.
// BENCH_SIM_HTTP2_WINDOW_BYTES=65535 makes it advertise HTTP/2's default window (before i20u) instead of its 1 MiB.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startSimulator } from '../dist/sim/index.js';
import { createRouterEvidence } from '../dist/sim/mint/router.js';
import { TEST_ROOTS_FILE, simTestRootsPem } from '../dist/sim/mint/test-roots.js';

const [dir, interval = '5'] = process.argv.slice(2);
const evidence = await createRouterEvidence();
const window = process.env.BENCH_SIM_HTTP2_WINDOW_BYTES;
const sim = await startSimulator({
  evidence,
  ...(window ? { http2WindowBytes: Number(window) } : {}),
  deterministic: { jsonBytes: 1024, streamChunks: 50, chunkIntervalMs: Number(interval) },
});
const caFile = join(dir, 'sim-ca.pem');
const rootFile = join(dir, 'release-root.pub');
writeFileSync(caFile, sim.caPem);
writeFileSync(rootFile, evidence.releaseRoot.publicPem);
// The simulator's ARK is a software root: the daemon trusts it only through attestation.test_roots_file.
const testRootsFile = join(dir, TEST_ROOTS_FILE);
writeFileSync(testRootsFile, simTestRootsPem({ evidence }));
process.stdout.write(`${JSON.stringify({ url: sim.url, caFile, rootFile, testRootsFile, bundleUrl: evidence.bundleUrl })}\n`);
const stop = () => sim.close().then(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
