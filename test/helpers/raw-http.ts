import net from 'node:net';

export interface RawResponse {
  status: number;
  /** Header names lower-cased; repeated fields joined with ", ". */
  headers: Record<string, string>;
  body: string;
}

/**
 * One HTTP/1.1 request written byte for byte on a new socket (HTTP clients normalise paths and
 * refuse some Host values; attackers' do not), `Connection: close` appended, the answer parsed.
 */
export async function rawRequest(origin: string, o: { method?: string; target: string; host?: string | null; headers?: Record<string, string>; body?: string }): Promise<RawResponse> {
  const { hostname, port } = new URL(origin);
  const lines = [`${o.method ?? 'GET'} ${o.target} HTTP/1.1`];
  if (o.host !== null) lines.push(`Host: ${o.host ?? `${hostname}:${port}`}`);
  for (const [k, v] of Object.entries(o.headers ?? {})) lines.push(`${k}: ${v}`);
  if (o.body !== undefined) lines.push(`Content-Length: ${Buffer.byteLength(o.body)}`);
  lines.push('Connection: close');
  const text = await new Promise<string>((resolve, reject) => {
    const chunks: Buffer[] = [];
    const s = net.connect(Number(port), hostname.replace(/^\[|\]$/g, ''), () => s.write(`${lines.join('\r\n')}\r\n\r\n${o.body ?? ''}`));
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    s.on('error', reject);
  });
  const split = text.indexOf('\r\n\r\n');
  const [statusLine, ...headerLines] = text.slice(0, split).split('\r\n');
  const headers: Record<string, string> = {};
  for (const l of headerLines) {
    const i = l.indexOf(':');
    const k = l.slice(0, i).trim().toLowerCase();
    const v = l.slice(i + 1).trim();
    headers[k] = headers[k] === undefined ? v : `${headers[k]}, ${v}`;
  }
  const body = text.slice(split + 4);
  // Chunked bodies: good enough for the small JSON answers these tests read.
  const unchunked = headers['transfer-encoding'] === 'chunked' ? body.replace(/^[0-9a-f]+\r\n|\r\n[0-9a-f]+\r\n|\r\n0\r\n\r\n$/gi, '') : body;
  return { status: Number(statusLine?.split(' ')[1]), headers, body: unchunked };
}
