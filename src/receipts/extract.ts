/**
 * Finds the `tresor` block (receipt id, routes, failover) in a response while its bytes flow to
 * the app, working on the same chunks without delaying or altering them. SSE: a byte-level line
 * splitter with a bounded line buffer; only `data:` lines that contain `"tresor"` are parsed.
 * JSON: bounded accumulation, parsed once at the end. Chunk boundaries can fall anywhere.
 */
export interface TresorBlock {
  receipt_id?: string;
  requested_route?: string;
  routed_model?: string;
  failover?: boolean;
}

export interface ExtractResult {
  tresor?: TresorBlock;
  /** Why nothing could be extracted (too large, unparseable); the receipt is then `missing`. */
  error?: string;
}

export interface TresorExtractor {
  push(chunk: Uint8Array): void;
  end(): ExtractResult;
}

/** Longest SSE line we look into; longer lines are skipped, never buffered. */
export const MAX_SSE_LINE = 1024 * 1024;
/** Largest JSON body we parse for its tresor block. */
export const MAX_JSON_BODY = 8 * 1024 * 1024;

const TRESOR = Buffer.from('"tresor"');
const REQUEST_ID = Buffer.from('"request_id"');
const ID = Buffer.from('"id"');

/**
 * Where a router names the receipt in its answer: Tresor's `tresor` block, a top-level `request_id`
 * (Pinaivu, seed 004), or the completion's own top-level `id` (NEAR: the chat id its signature is filed under).
 */
export type ReceiptIdField = 'tresor' | 'request_id' | 'id';

/** A top-level string field is the receipt id (Pinaivu `request_id`, NEAR `id`), the answer's `model` the model that served. */
const pickTopLevel =
  (field: 'request_id' | 'id') =>
  (value: unknown): TresorBlock | undefined => {
    const o = value as Record<string, unknown> | null;
    const id = typeof o === 'object' && o !== null ? o[field] : undefined;
    if (typeof id !== 'string') return undefined;
    return { receipt_id: id, ...(typeof o?.model === 'string' ? { routed_model: o.model } : {}) };
  };

function pick(value: unknown): TresorBlock | undefined {
  const t = (value as { tresor?: unknown } | null)?.tresor;
  if (typeof t !== 'object' || t === null || Array.isArray(t)) return undefined;
  const o = t as Record<string, unknown>;
  return {
    ...(typeof o.receipt_id === 'string' ? { receipt_id: o.receipt_id } : {}),
    ...(typeof o.requested_route === 'string' ? { requested_route: o.requested_route } : {}),
    ...(typeof o.routed_model === 'string' ? { routed_model: o.routed_model } : {}),
    ...(typeof o.failover === 'boolean' ? { failover: o.failover } : {}),
  };
}

export function createTresorExtractor(kind: 'json' | 'sse', field: ReceiptIdField = 'tresor'): TresorExtractor {
  const how = field === 'tresor' ? { needle: TRESOR, pick } : { needle: field === 'id' ? ID : REQUEST_ID, pick: pickTopLevel(field) };
  return kind === 'sse' ? sseExtractor(how) : jsonExtractor(how);
}

interface Picker {
  needle: Buffer;
  pick(value: unknown): TresorBlock | undefined;
}

function jsonExtractor({ needle, pick }: Picker): TresorExtractor {
  const chunks: Buffer[] = [];
  let size = 0;
  let tooLarge = false;
  return {
    push(chunk) {
      if (tooLarge) return;
      size += chunk.length;
      if (size > MAX_JSON_BODY) {
        tooLarge = true;
        chunks.length = 0;
        return;
      }
      chunks.push(Buffer.from(chunk));
    },
    end() {
      if (tooLarge) return { error: `response body larger than ${MAX_JSON_BODY} bytes` };
      const body = Buffer.concat(chunks);
      if (body.indexOf(needle) < 0) return {};
      try {
        const t = pick(JSON.parse(body.toString('utf8')));
        return t ? { tresor: t } : {};
      } catch {
        return { error: 'response body is not JSON' };
      }
    },
  };
}

function sseExtractor({ needle, pick }: Picker): TresorExtractor {
  let line: Buffer[] = [];
  let lineSize = 0;
  let skipping = false;
  let found: TresorBlock | undefined;
  let foundFinal = false;
  const onLine = (bytes: Buffer) => {
    if (bytes.length < 6 || bytes.indexOf(needle) < 0) return;
    const text = bytes.toString('utf8').replace(/\r$/, '');
    if (!text.startsWith('data:')) return;
    let value: unknown;
    try {
      value = JSON.parse(text.slice(5).trimStart());
    } catch {
      return;
    }
    const t = pick(value);
    if (!t) return;
    // The finish chunk (finish_reason set) carries the receipt id; prefer it over earlier blocks.
    const final = ((value as { choices?: { finish_reason?: unknown }[] }).choices ?? []).some((c) => c?.finish_reason != null);
    if (!foundFinal || final) {
      found = t;
      foundFinal = final;
    }
  };
  return {
    push(chunk) {
      const buf = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      // Most chunks are whole events without the needle: with no partial line pending and the
      // chunk ending at a line end, no line of it can contain the needle (which has no newline),
      // and the splitter would end where it started. One search instead of a pass per line.
      if (line.length === 0 && lineSize === 0 && !skipping && buf.length > 0 && buf[buf.length - 1] === 0x0a && buf.indexOf(needle) < 0) return;
      let start = 0;
      for (;;) {
        const nl = buf.indexOf(0x0a, start);
        const end = nl < 0 ? buf.length : nl;
        if (!skipping) {
          lineSize += end - start;
          if (lineSize > MAX_SSE_LINE) {
            skipping = true;
            line = [];
          } else if (end > start) line.push(buf.subarray(start, end));
        }
        if (nl < 0) break;
        if (!skipping) onLine(line.length === 1 ? (line[0] as Buffer) : Buffer.concat(line));
        line = [];
        lineSize = 0;
        skipping = false;
        start = nl + 1;
      }
      // Keep copies of a partial line only: the app's chunk buffers are never retained.
      if (line.length > 0) line = [Buffer.from(Buffer.concat(line))];
    },
    end() {
      if (!skipping && line.length > 0) onLine(Buffer.concat(line));
      return found ? { tresor: found } : {};
    },
  };
}
