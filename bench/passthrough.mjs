// The bare passthrough contender: a minimal undici Pool-based Node reverse proxy with no checks,
// what any Node proxy costs. Usage: node bench/passthrough.mjs UPSTREAM_URL CA_FILE [--h2] → prints "listening http://…".
// With --h2 it offers HTTP/2 to the upstream (undici `allowH2`), as the daemon's `pool.http2: true`.
import http from 'node:http';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { Pool } from 'undici';

const [upstream, caFile] = process.argv.slice(2);
const pool = new Pool(upstream, { connections: 1100, allowH2: process.argv.includes('--h2'), connect: { ca: readFileSync(caFile, 'utf8') }, keepAliveTimeout: 60_000 });
const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'host']);
const strip = (headers) => Object.fromEntries(Object.entries(headers).filter(([k]) => !HOP.has(k)));

const server = http.createServer({ keepAliveTimeout: 65_000, requestTimeout: 0, noDelay: true }, async (req, res) => {
  try {
    const hasBody = req.method !== 'GET' && req.method !== 'HEAD';
    const up = await pool.request({ method: req.method, path: req.url, headers: strip(req.headers), body: hasBody ? req : undefined });
    res.writeHead(up.statusCode, strip(up.headers));
    for await (const chunk of up.body) if (!res.write(chunk)) await once(res, 'drain');
    res.end();
  } catch {
    if (!res.headersSent) res.writeHead(502).end();
    else res.destroy();
  }
});
server.listen(0, '127.0.0.1', () => process.stdout.write(`listening http://127.0.0.1:${server.address().port}\n`));
process.on('SIGTERM', () => process.exit(0));
