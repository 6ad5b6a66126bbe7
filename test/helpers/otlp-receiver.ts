import { appendFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { auditFiles } from '../../src/audit/recover.js';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import protobuf from 'protobufjs';

const ExportLogsServiceRequest = protobuf.loadSync(new URL('../fixtures/otlp/logs.proto', import.meta.url).pathname).lookupType('opentelemetry.proto.ExportLogsServiceRequest');

export interface OtlpReceiver {
  /** Base URL (the exporter appends /v1/logs). */
  url: string;
  /** Requests received, by content type. */
  received: { protobuf: number; json: number };
  /** The body size of every request accepted, in order. */
  sizes: number[];
  /** The headers of the last request. */
  lastHeaders: () => http.IncomingHttpHeaders;
  /** Stop accepting connections (the collector is down). */
  down(): Promise<void>;
  /** Listen again on the same port. */
  up(): Promise<void>;
  close(): Promise<void>;
}

/**
 * A real OTLP/HTTP logs receiver for the tests: decodes http/protobuf (protobufjs, from the OTLP
 * proto) and http/json, and appends each request to `file` as one OTLP/JSON line, the way the
 * collector's file exporter writes them. A body over `maxBodyBytes` is refused with 413, as a
 * collector's `max_request_body_size` (or a proxy's body limit) refuses it.
 */
export async function startOtlpReceiver(file: string, { maxBodyBytes = Infinity } = {}): Promise<OtlpReceiver> {
  const received = { protobuf: 0, json: 0 };
  const sizes: number[] = [];
  let lastHeaders: http.IncomingHttpHeaders = {};
  const server = http.createServer((req, res) => {
    lastHeaders = req.headers;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const type = req.headers['content-type'] ?? '';
      let request: unknown;
      if (req.url !== '/v1/logs' || req.method !== 'POST') {
        res.writeHead(404).end();
        return;
      }
      if (body.length > maxBodyBytes) {
        res.writeHead(413).end();
        return;
      }
      sizes.push(body.length);
      if (type.startsWith('application/x-protobuf')) {
        received.protobuf += 1;
        request = ExportLogsServiceRequest.toObject(ExportLogsServiceRequest.decode(body), { longs: String, bytes: String, defaults: false, oneofs: false });
      } else if (type.startsWith('application/json')) {
        received.json += 1;
        request = JSON.parse(body.toString('utf8'));
      } else {
        res.writeHead(415).end();
        return;
      }
      // One synchronous append per request: concurrent requests never interleave their lines.
      appendFileSync(file, `${JSON.stringify(request)}\n`);
      res.writeHead(200, { 'content-type': type }).end(type.startsWith('application/json') ? '{}' : Buffer.alloc(0));
    });
  });
  const listen = (port: number) => new Promise<void>((resolve, reject) => server.once('error', reject).listen(port, '127.0.0.1', () => resolve()));
  await listen(0);
  const port = (server.address() as AddressInfo).port;
  const stop = () =>
    new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  return { url: `http://127.0.0.1:${port}`, received, sizes, lastHeaders: () => lastHeaders, down: stop, up: () => listen(port), close: stop };
}

/** Every audit line in `dir`, in order. */
export async function auditLines(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const f of await auditFiles(dir)) {
    const lines = (await readFile(join(dir, f), 'utf8')).split('\n');
    lines.pop(); // whole lines only: the writer may be mid-append
    out.push(...lines.filter(Boolean));
  }
  return out;
}

/** The bodies the receiver wrote (OTLP/JSON lines), per instance id. */
export async function exported(file: string): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  const text = await readFile(file, 'utf8').catch(() => '');
  // Only whole lines: a read may overlap an append still in progress (the last segment is torn).
  const lines = text.split('\n');
  lines.pop();
  for (const line of lines.filter(Boolean)) {
    const req = JSON.parse(line) as { resourceLogs: { scopeLogs: { logRecords: { body: { stringValue: string }; attributes: { key: string; value: { stringValue?: string } }[] }[] }[] }[] };
    for (const lr of req.resourceLogs.flatMap((r) => r.scopeLogs).flatMap((s) => s.logRecords)) {
      const inst = lr.attributes.find((a) => a.key === 'tresor.instance.id')?.value.stringValue as string;
      out.set(inst, [...(out.get(inst) ?? []), lr.body.stringValue]);
    }
  }
  return out;
}

export async function until(what: string, cond: () => Promise<boolean> | boolean, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
