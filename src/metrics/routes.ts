import { boundedMemo } from '../util/memo.js';

/**
 * Route labels for metrics: a fixed, finite set. A path is reduced to its OpenAI route template
 * (ids replaced, query dropped); anything else is `other`, so no id, key or user input can become
 * a label value.
 */
const ROUTES: readonly (readonly [RegExp, string])[] = [
  [/^\/v1\/chat\/completions$/, '/v1/chat/completions'],
  [/^\/v1\/completions$/, '/v1/completions'],
  [/^\/v1\/embeddings$/, '/v1/embeddings'],
  [/^\/v1\/responses$/, '/v1/responses'],
  [/^\/v1\/responses\/[^/]+$/, '/v1/responses/{id}'],
  [/^\/v1\/audio\/transcriptions$/, '/v1/audio/transcriptions'],
  [/^\/v1\/audio\/translations$/, '/v1/audio/translations'],
  [/^\/v1\/audio\/speech$/, '/v1/audio/speech'],
  [/^\/v1\/models$/, '/v1/models'],
  [/^\/v1\/models\/[^/]+$/, '/v1/models/{id}'],
  [/^\/v1\/receipts\/[^/]+$/, '/v1/receipts/{id}'],
  [/^\/v1\/moderations$/, '/v1/moderations'],
  [/^\/v1\/images\/[a-z]+$/, '/v1/images'],
];

/** The route label of a path, worked out once per path (a daemon sees a handful); bounded, since paths with ids or queries are many. */
export const routeLabel = boundedMemo(512, routeOf);

function routeOf(path: string): string {
  const q = path.indexOf('?');
  const p = (q < 0 ? path : path.slice(0, q)).replace(/\/+$/, '');
  for (const [re, label] of ROUTES) if (re.test(p)) return label;
  return 'other';
}

const STATUS_CLASSES = ['none', '1xx', '2xx', '3xx', '4xx', '5xx'];

/** `2xx`, `4xx`, ...; `none` when no status was sent (the client went away first). */
export function statusClass(status: number): string {
  if (status === 499 || status < 100 || status > 599) return status === 499 ? 'client_closed' : 'none';
  return STATUS_CLASSES[Math.floor(status / 100)] ?? `${Math.floor(status / 100)}xx`;
}

const METHODS = new Set(['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS']);

export function methodLabel(method: string | undefined): string {
  if (method !== undefined && METHODS.has(method)) return method;
  const m = (method ?? '').toUpperCase();
  return METHODS.has(m) ? m : 'other';
}

const CODE_RE = /^ERR_[A-Z0-9_]{1,80}$/;

/** Error codes are a fixed vocabulary (`ERR_*`); anything else is reported as `other`. */
export function codeLabel(code: string | undefined): string {
  if (code === undefined) return '';
  return CODE_RE.test(code) ? code : 'other';
}
