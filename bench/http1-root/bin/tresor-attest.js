#!/usr/bin/env node
// This tree's daemon with `pool.http2: false` forced into the config the bench writes: point
// BENCH_BASELINE_ROOT at bench/http1-root and the `baseline-tresor-attest*` rows are this tree
// over HTTP/1.1 to the router (e.g. receipts off over HTTP/1.1 beside the HTTP/2 row, without a
// contender of its own). Diagnosis only; see docs/benchmarks.md, fourth round (branch i20o).
import { readFileSync, writeFileSync } from 'node:fs';

const i = process.argv.indexOf('--config');
if (i > 0) {
  const file = process.argv[i + 1];
  const config = JSON.parse(readFileSync(file, 'utf8'));
  for (const u of config.upstreams ?? []) u.pool = { ...u.pool, http2: false };
  writeFileSync(file, JSON.stringify(config));
}
await import('../../../bin/tresor-attest.js');
