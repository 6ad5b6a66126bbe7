import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type busboyModule from 'busboy';
import { sendJson, sendJsonError, sleep } from './http.js';
import { resolveRoute } from './routes.js';
import type { SimContext } from './context.js';

const MAX_UPLOAD = 200 * 1024 * 1024;

/**
 * busboy is a development dependency (only this simulator route parses multipart): loaded on the
 * first upload, so the installed library and the rest of the simulator run without it.
 */
let busboyLoad: Promise<typeof busboyModule | undefined> | undefined;
const loadBusboy = () => (busboyLoad ??= import('busboy').then((m) => m.default, () => undefined));

/** Multipart transcription, streamed: the file is hashed and counted, never held in memory. */
export async function handleTranscription(req: IncomingMessage, res: ServerResponse, ctx: SimContext, ownerKeySha256: string): Promise<void> {
  const requestHash = createHash('sha256');
  const fields: Record<string, string> = {};
  let fileBytes = 0;
  let fileSeen = false;
  let tooLarge = false;
  const busboy = await loadBusboy();
  if (!busboy) {
    req.resume();
    return sendJsonError(res, 501, 'simulator_dependency_missing', "the simulator's transcription route needs the busboy package: npm install busboy");
  }
  const parsed = await new Promise<boolean>((resolve) => {
    let bb: busboyModule.Busboy;
    try {
      bb = busboy({ headers: req.headers, limits: { fileSize: MAX_UPLOAD, fields: 32, fieldSize: 64 * 1024, files: 1 } });
    } catch {
      return resolve(false);
    }
    req.on('data', (c: Buffer) => requestHash.update(c));
    bb.on('field', (name, value) => (fields[name] = value));
    bb.on('file', (name, file) => {
      if (name === 'file') fileSeen = true;
      file.on('data', (c: Buffer) => (fileBytes += c.length));
      file.on('limit', () => (tooLarge = true));
    });
    bb.on('close', () => resolve(true));
    bb.on('error', () => resolve(false));
    req.pipe(bb);
  });
  if (!parsed) return sendJsonError(res, 400, 'invalid_multipart', 'expected a multipart/form-data body');
  if (tooLarge) return sendJsonError(res, 413, 'request_too_large', 'audio file too large');
  if (!fileSeen || !fields.model) return sendJsonError(res, 400, 'missing_field', '`file` and `model` are required');
  const format = fields.response_format ?? 'json';
  if (!['json', 'text', 'verbose_json'].includes(format)) return sendJsonError(res, 400, 'invalid_response_format', 'response_format must be json, text or verbose_json');
  if (format === 'verbose_json' && !fields.language) return sendJsonError(res, 400, 'missing_field', '`language` is required for verbose_json');
  const route = resolveRoute(fields.model, { region: fields.region, provider: fields.provider });
  if (!route) return sendJsonError(res, 404, 'model_not_found', `model ${JSON.stringify(fields.model)} not found`);
  const served = route.candidates.find((r) => !ctx.faults.unavailableRoutes.includes(r));
  if (!served) return sendJsonError(res, 502, 'no_route_available', 'no eligible route could serve the request');
  const faults = { ...ctx.faults };
  await sleep(faults.latencyMs);

  const optOut = String(req.headers['x-tresor-receipt'] ?? '').toLowerCase() === 'false';
  const receiptId = optOut ? undefined : ctx.receipts.newId();
  const tresor = { ...(receiptId ? { receipt_id: receiptId } : {}), requested_route: route.requested, routed_model: served, failover: false };
  const text = `Simulated transcript of ${fileBytes} bytes of audio by ${served}.`;
  const duration = Math.round((fileBytes / 32_000) * 100) / 100;
  const responseHash = createHash('sha256');
  const receiptHeader: Record<string, string> = receiptId ? { 'x-tresor-receipt-id': receiptId } : {};
  if (format === 'text') {
    const bytes = Buffer.from(`${text}\n`);
    res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'content-length': bytes.length, ...receiptHeader });
    res.end(bytes);
    responseHash.update(bytes);
  } else {
    const body =
      format === 'verbose_json'
        ? { task: 'transcribe', language: fields.language, duration, text, segments: [{ id: 0, start: 0, end: duration, text }], tresor }
        : { text, tresor };
    responseHash.update(sendJson(res, 200, body, receiptHeader));
  }
  await new Promise<void>((r) => (res.writableFinished ? r() : res.once('finish', () => r())));
  if (receiptId && ctx.receiptsEnabled) {
    await ctx.issueReceipt(receiptId, ownerKeySha256, faults, {
      requested_route: route.requested,
      routed_model: served,
      failover: false,
      request_digest: `sha256:${requestHash.digest('hex')}`,
      response_digest: `sha256:${responseHash.digest('hex')}`,
      audio_bytes: fileBytes,
    });
  }
}
