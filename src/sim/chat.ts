import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { resetResponse, responseGone } from './server.js';
import { readBody, sendJson, sendJsonError, sleep } from './http.js';
import { resolveRoute } from './routes.js';
import type { SimContext } from './context.js';

const MAX_CHAT_BODY = 16 * 1024 * 1024;

/** `X-Tresor-Timeout-Seconds` as the router validates it: one positive integer, clamped to 600. */
export function timeoutOverride(req: IncomingMessage): { ok: true; seconds?: number } | { ok: false } {
  const values: string[] = [];
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    if ((req.rawHeaders[i] as string).toLowerCase() === 'x-tresor-timeout-seconds') values.push(req.rawHeaders[i + 1] as string);
  }
  if (values.length === 0) return { ok: true };
  if (values.length > 1 || !/^\d+$/.test((values[0] as string).trim())) return { ok: false };
  const n = Number((values[0] as string).trim());
  if (n <= 0) return { ok: false };
  return { ok: true, seconds: Math.min(n, 600) };
}

interface ChatBody {
  model?: unknown;
  messages?: unknown;
  stream?: unknown;
  failover?: unknown;
  region?: unknown;
  provider?: unknown;
  stream_options?: { include_usage?: boolean };
}

export async function handleChat(req: IncomingMessage, res: ServerResponse, ctx: SimContext, ownerKeySha256: string): Promise<void> {
  const raw = await readBody(req, MAX_CHAT_BODY);
  if (raw === 'too-large') return sendJsonError(res, 413, 'request_too_large', 'request body too large');
  let body: ChatBody;
  try {
    body = JSON.parse(raw.toString('utf8')) as ChatBody;
    if (typeof body !== 'object' || body === null) throw new Error('not an object');
  } catch {
    return sendJsonError(res, 400, 'invalid_json', 'request body is not valid JSON');
  }
  if (typeof body.model !== 'string' || !Array.isArray(body.messages)) {
    return sendJsonError(res, 400, 'missing_field', '`model` and `messages` are required');
  }
  const stream = body.stream === true;
  const override = timeoutOverride(req);
  if (!override.ok || (stream && override.seconds !== undefined)) {
    return sendJsonError(res, 400, 'invalid_timeout_override', 'X-Tresor-Timeout-Seconds must be one positive integer, for non-stream requests only');
  }
  const failoverList = body.failover ?? [];
  if (!Array.isArray(failoverList) || failoverList.length > 5 || !failoverList.every((f) => typeof f === 'string')) {
    return sendJsonError(res, 400, 'invalid_failover', '`failover` must be a list of at most 5 model ids');
  }
  const primary = resolveRoute(body.model, { region: body.region, provider: body.provider });
  if (!primary) return sendJsonError(res, 404, 'model_not_found', `model ${JSON.stringify(body.model)} not found`);
  const eligible = [primary.candidates[0] as string, ...failoverList.flatMap((f) => resolveRoute(f as string)?.candidates.slice(0, 1) ?? [])];
  const served = eligible.find((r) => !ctx.faults.unavailableRoutes.includes(r));
  if (!served) return sendJsonError(res, 502, 'no_route_available', 'no eligible route could serve the request');
  const failover = served !== eligible[0];

  // Faults apply as they were when the request arrived (tests flip them between requests).
  const faults = { ...ctx.faults };
  await sleep(faults.latencyMs);
  const optOut = String(req.headers['x-tresor-receipt'] ?? '').toLowerCase() === 'false';
  const id = `chatcmpl-${randomBytes(8).toString('hex')}`;
  const receiptId = optOut ? undefined : ctx.near ? id : ctx.aci ? `rcpt-${ctx.receipts.newId()}` : ctx.pinaivu ? randomUUID() : ctx.receipts.newId();
  const tresor = { ...(receiptId ? { receipt_id: receiptId } : {}), requested_route: primary.requested, routed_model: served, failover };
  // Where the answer names its receipt: a `tresor` block (Tresor), X-Receipt-Id only (ACI), a top-level
  // `request_id` (Pinaivu), the answer's own `id` (NEAR).
  const block = ctx.aci || ctx.near ? {} : ctx.pinaivu ? (receiptId ? { request_id: receiptId } : {}) : { tresor };
  const created = Math.floor(Date.now() / 1000);
  const prompt = lastUserText(body.messages);
  const text = ctx.deterministic ? filler(ctx.deterministic.jsonBytes) : `Simulated answer from ${served}: ${prompt.slice(0, 200)}`;
  const promptTokens = Math.max(1, Math.ceil(prompt.length / 4));
  const completionTokens = Math.max(1, Math.ceil(text.length / 4));
  const responseHash = createHash('sha256');

  if (!stream) {
    const bytes = sendJson(res, 200, {
      id,
      object: 'chat.completion',
      created,
      model: served,
      choices: [{ index: 0, message: { role: 'assistant', content: text }, finish_reason: 'stop' }],
      usage: { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens },
      ...block,
    }, ctx.aci && receiptId ? { 'x-receipt-id': receiptId } : {});
    responseHash.update(bytes);
  } else {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', ...(receiptId && !ctx.pinaivu && !ctx.near ? { [ctx.aci ? 'x-receipt-id' : 'x-tresor-receipt-id']: receiptId } : {}) });
    res.flushHeaders();
    const pieces = split(text, ctx.deterministic?.streamChunks ?? Math.min(12, Math.max(2, Math.ceil(text.length / 16))));
    const base = { id, object: 'chat.completion.chunk', created, model: served };
    const events: unknown[] = [
      { ...base, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }] },
      ...pieces.map((p) => ({ ...base, choices: [{ index: 0, delta: { content: p }, finish_reason: null }] })),
      { ...base, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }], ...block },
    ];
    if (body.stream_options?.include_usage) {
      events.push({ ...base, choices: [], usage: { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens } });
    }
    const delay = ctx.deterministic?.chunkIntervalMs ?? ctx.faults.chunkDelayMs;
    let sent = 0;
    for (const ev of events) {
      if (ctx.faults.resetStreamAfterChunks !== null && sent >= ctx.faults.resetStreamAfterChunks) {
        ctx.faults.resetStreamAfterChunks = null;
        // Let the chunks already written reach the wire, then reset the connection abruptly.
        await sleep(20);
        resetResponse(res);
        return;
      }
      const chunk = Buffer.from(`data: ${JSON.stringify(ev)}\n\n`);
      responseHash.update(chunk);
      await new Promise<void>((r) => res.write(chunk, () => r()));
      sent++;
      await sleep(delay);
      if (responseGone(res)) return;
    }
    const done = Buffer.from('data: [DONE]\n\n');
    responseHash.update(done);
    res.end(done);
  }
  await new Promise<void>((r) => (res.writableFinished ? r() : res.once('finish', () => r())));
  if (receiptId && ctx.receiptsEnabled) {
    await ctx.issueReceipt(receiptId, ownerKeySha256, faults, {
      requested_route: primary.requested,
      routed_model: served,
      failover,
      request_digest: `sha256:${createHash('sha256').update(raw).digest('hex')}`,
      response_digest: `sha256:${responseHash.digest('hex')}`,
      prompt_tokens: promptTokens,
      completion_tokens: completionTokens,
      ...(ctx.aci ? { chat_id: id } : {}),
    });
  }
}

function lastUserText(messages: unknown[]): string {
  for (let i = messages.length - 1; i >= 0; i--) {
    const m = messages[i] as { role?: unknown; content?: unknown };
    if (m?.role === 'user' && typeof m.content === 'string') return m.content;
  }
  return '';
}

/** Exactly `n` pieces (as even as possible) when the text is at least `n` characters long. */
function split(text: string, n: number): string[] {
  const count = Math.max(1, Math.min(n, text.length));
  const out: string[] = [];
  for (let i = 0; i < count; i++) out.push(text.slice(Math.floor((i * text.length) / count), Math.floor(((i + 1) * text.length) / count)));
  return out;
}

/** Deterministic text of exactly `bytes` ASCII bytes. */
export function filler(bytes: number): string {
  const word = 'lorem ipsum dolor sit amet ';
  return word.repeat(Math.ceil(bytes / word.length)).slice(0, bytes);
}
