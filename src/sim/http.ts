import type { IncomingMessage, ServerResponse } from 'node:http';

/** OpenAI-style error envelope, as the router's docs describe (`{"error":{"message","type","code"}}`). */
export function sendJsonError(res: ServerResponse, status: number, code: string, message: string, type = errorType(status), headers: Record<string, string> = {}) {
  sendJson(res, status, { error: { message, type, code } }, headers);
}

function errorType(status: number): string {
  if (status === 401) return 'invalid_request_error';
  if (status === 404) return 'invalid_request_error';
  if (status === 429) return 'rate_limit_error';
  if (status >= 500) return 'service_unavailable';
  return 'invalid_request_error';
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): Buffer {
  const bytes = Buffer.from(JSON.stringify(body));
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': bytes.length, ...headers });
  res.end(bytes);
  return bytes;
}

/** Read a whole (bounded) request body. */
export async function readBody(req: IncomingMessage, max: number): Promise<Buffer | 'too-large'> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > max) return 'too-large';
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

export const sleep = (ms: number) => (ms > 0 ? new Promise<void>((r) => setTimeout(r, ms)) : Promise.resolve());
