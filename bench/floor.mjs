// The receipt's extra exchange on its own: the CPU one process spends, as a client of the simulated
// router over the stack the daemon uses (an undici Pool, HTTP/2 when offered, TLS), per
// `GET /v1/receipts/{id}` of a real receipt (body read whole, as the daemon reads it), and per 1 KB
// chat completion for comparison. One input of the floor analysis in docs/benchmarks.md.
// Usage: node bench/floor.mjs [REQUESTS] [CONCURRENCY] [h2|h1] → one JSON line (h2 by default, as the bench's daemon).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { Pool } from 'undici';
import { startSim } from './contenders.mjs';
import { API_KEY } from './load.mjs';

const [n = '3000', c = '16', protocol = 'h2'] = process.argv.slice(2).map(String);
const dir = mkdtempSync(join(os.tmpdir(), 'tresor-floor-'));
const sim = await startSim(dir, 5);
const pool = new Pool(sim.url, { connect: { ca: readFileSync(sim.caFile, 'utf8') }, allowH2: protocol === 'h2', connections: Number(c) });
const headers = { authorization: `Bearer ${API_KEY}` };
const chatBody = JSON.stringify({ model: 'eu/tresor/gpt-oss-120b', messages: [{ role: 'user', content: 'hello' }] });

const chat = async () => {
  const res = await pool.request({ method: 'POST', path: '/v1/chat/completions', headers: { ...headers, 'content-type': 'application/json' }, body: chatBody });
  return Buffer.from(await res.body.arrayBuffer());
};
const answer = JSON.parse((await chat()).toString('utf8'));
const id = answer.tresor?.receipt_id;
if (typeof id !== 'string') throw new Error('the simulator named no receipt id');
await new Promise((r) => setTimeout(r, 200));
let bytes = 0;
const get = async () => {
  const res = await pool.request({ method: 'GET', path: `/v1/receipts/${encodeURIComponent(id)}`, headers: { ...headers, accept: 'application/json' } });
  const body = Buffer.from(await res.body.arrayBuffer());
  if (res.statusCode !== 200) throw new Error(`GET receipt: HTTP ${res.statusCode}`);
  bytes = body.length;
};

/** CPU of this process (all threads) per call of `op`, `count` calls `concurrency` at a time, after a warm-up. */
async function cpuPer(op, count, concurrency) {
  const run = async (k) => {
    let left = k;
    await Promise.all(Array.from({ length: concurrency }, async () => {
      while (left-- > 0) await op();
    }));
  };
  await run(Math.min(500, count));
  const t0 = process.cpuUsage();
  await run(count);
  const d = process.cpuUsage(t0);
  return (d.user + d.system) / count;
}

try {
  const out = { kind: 'receipt-exchange', protocol, concurrency: Number(c), requests: Number(n) };
  out.receiptGetUs = await cpuPer(get, Number(n), Number(c));
  out.receiptBytes = bytes;
  out.chatPostUs = await cpuPer(chat, Number(n), Number(c));
  process.stdout.write(`${JSON.stringify(out)}\n`);
} finally {
  await pool.close();
  await sim.stop();
  rmSync(dir, { recursive: true, force: true });
}
