import { readFile } from 'node:fs/promises';
import { UsageError } from '../errors/index.js';

/** A file a flag names (a key, roots, a CA), read whole; unreadable: a usage error naming the flag. */
export const readFlagFile = (path: string, what: string) =>
  readFile(path).catch((e: NodeJS.ErrnoException) => {
    throw new UsageError('ERR_USAGE_INPUT_UNREADABLE', `${what}: cannot read ${path}: ${e.code ?? e.message}`);
  });

/** Read a whole file, or standard input when `path` is `-`. Bounded so a wrong path cannot exhaust memory. */
export async function readInput(path: string, maxBytes = 64 * 1024 * 1024): Promise<Uint8Array> {
  // yargs hands a lone `-` positional over as an empty string.
  if (path === '-' || path === '') {
    const chunks: Buffer[] = [];
    let total = 0;
    for await (const chunk of process.stdin) {
      const b = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string);
      total += b.length;
      if (total > maxBytes) throw new UsageError('ERR_USAGE_INPUT_TOO_LARGE', `standard input exceeds ${maxBytes} bytes`);
      chunks.push(b);
    }
    return new Uint8Array(Buffer.concat(chunks));
  }
  try {
    const data = await readFile(path);
    if (data.length > maxBytes) throw new UsageError('ERR_USAGE_INPUT_TOO_LARGE', `${path} exceeds ${maxBytes} bytes`);
    return new Uint8Array(data);
  } catch (e) {
    if (e instanceof UsageError) throw e;
    throw new UsageError('ERR_USAGE_INPUT_UNREADABLE', `cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`, {
      cause: e,
    });
  }
}

/**
 * Binary evidence given as raw bytes, base64 or hex (whitespace ignored in the text forms).
 * Text is tried only when every byte is printable ASCII, so raw binary is never mangled.
 */
export function decodeBinaryInput(data: Uint8Array): Uint8Array {
  const printable = data.every((b) => b === 0x09 || b === 0x0a || b === 0x0d || (b >= 0x20 && b < 0x7f));
  if (!printable || data.length === 0) return data;
  const text = Buffer.from(data).toString('ascii').replace(/\s+/g, '');
  const hex = text.startsWith('0x') ? text.slice(2) : text;
  if (hex.length % 2 === 0 && /^[0-9a-fA-F]+$/.test(hex)) return new Uint8Array(Buffer.from(hex, 'hex'));
  if (/^[A-Za-z0-9+/]+={0,2}$/.test(text) && text.length % 4 === 0) return new Uint8Array(Buffer.from(text, 'base64'));
  if (/^[A-Za-z0-9_-]+$/.test(text)) return new Uint8Array(Buffer.from(text, 'base64url'));
  return data;
}

/** Parse an ISO 8601 `--at` value. */
export function parseAt(value: string | undefined): Date | undefined {
  if (value === undefined) return undefined;
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) throw new UsageError('ERR_USAGE_BAD_TIME', `--at: expected an ISO 8601 time, got ${JSON.stringify(value)}`);
  return d;
}
