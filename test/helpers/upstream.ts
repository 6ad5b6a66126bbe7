import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { generateTlsIdentity } from '../../src/x509/selfsigned.js';

export interface Received {
  method: string;
  url: string;
  rawHeaders: string[];
  headers: IncomingMessage['headers'];
  body: Buffer;
}

export interface TestUpstream {
  url: string;
  caPem: string;
  received: Received[];
  /** Sockets the upstream saw close before its response finished (client aborts). */
  aborted: number;
  close(): Promise<void>;
}

/** A real HTTPS upstream whose behaviour each test supplies; records what it received. */
export async function startTestUpstream(handler: (req: IncomingMessage, res: ServerResponse, body: Buffer) => void | Promise<void>): Promise<TestUpstream> {
  const id = await generateTlsIdentity(['localhost', '127.0.0.1'], { commonName: `test-upstream-${Math.random()}` });
  const up: TestUpstream = { url: '', caPem: id.certPem, received: [], aborted: 0, close: async () => undefined };
  const server = https.createServer({ cert: id.certPem, key: id.keyPem }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      up.received.push({ method: req.method ?? '', url: req.url ?? '', rawHeaders: req.rawHeaders, headers: req.headers, body });
      res.on('close', () => {
        if (!res.writableFinished) up.aborted++;
      });
      void handler(req, res, body);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  up.url = `https://localhost:${(server.address() as AddressInfo).port}`;
  up.close = () =>
    new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    });
  return up;
}
