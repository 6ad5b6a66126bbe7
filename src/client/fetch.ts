import { fetch as undiciFetch, Request as UndiciRequest } from 'undici';
import { AttestationError } from '../errors/attestation.js';
import { UsageError } from '../errors/index.js';
import type { VerdictSummary } from '../receipts/verdicts.js';
import { AttestedAgent, liveAgents, REQUEST_ID_HEADER, WholeBodyDispatcher } from './agent.js';
import type { AttestedOptions } from './options.js';

/** A WHATWG `fetch` bound to one attested router, with its agent and receipt verdicts at hand. */
export type AttestedFetch = typeof globalThis.fetch & {
  /** The dispatcher every request goes through. */
  readonly agent: AttestedAgent;
  /** Attest now (rejects with the typed `AttestationError`); optional, requests attest on their own. */
  ready(): Promise<void>;
  /** The receipt verdict of a response this fetch returned (see `verdictFor`). */
  verdictFor(response: ResponseLike | string, options?: { timeoutMs?: number }): Promise<VerdictSummary>;
  /** Close the connections and the receipt pipeline. */
  close(): Promise<void>;
};

/** A fetch `Response`, an undici `request()` result, or anything with the response headers. */
export interface ResponseLike {
  headers: { get(name: string): string | null } | Record<string, string | string[] | undefined>;
}

/**
 * A `fetch` whose every request goes to the attested router through an `AttestedAgent`. An
 * attestation failure rejects with the named `AttestationError` subclass itself (not wrapped in
 * undici's `TypeError: fetch failed`), before any application byte leaves the process. The
 * openai SDK (and LangChain over it) wraps it in `APIConnectionError` as `cause`:
 * `attestationErrorOf(e)` finds it (docs/library.md: how each client reports and retries it).
 *
 * @example
 * ```ts
 * import OpenAI from 'openai'
 * import { attestedFetch } from 'tresor-attest'
 * const fetch = attestedFetch({ baseURL: 'https://api.tresor.co/v1', releaseRootFile: 'release-root.pub', receipts: 'audit' })
 * const client = new OpenAI({ baseURL: 'https://api.tresor.co/v1', apiKey: process.env.TRESOR_API_KEY, fetch })
 * const { data, response } = await client.chat.completions.create({ model: 'gpt-oss-120b', messages }).withResponse()
 * console.log((await fetch.verdictFor(response)).verdict) // 'verified'
 * ```
 */
export function attestedFetch(options: AttestedOptions | AttestedAgent): AttestedFetch {
  const agent = options instanceof AttestedAgent ? options : new AttestedAgent(options);
  const f = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    // A Request from another fetch implementation (Node's global one) is re-made in undici's own form.
    const req = typeof input === 'object' && !(input instanceof URL) && !(input instanceof UndiciRequest) ? new UndiciRequest(input.url, input as unknown as ConstructorParameters<typeof UndiciRequest>[1]) : input;
    try {
      // A string or byte body is known whole here (fetch streams it to the dispatcher): the pool routes by it.
      const body = init?.body;
      const dispatcher = typeof body === 'string' || body instanceof Uint8Array ? new WholeBodyDispatcher(agent, body) : agent;
      return (await undiciFetch(req as Parameters<typeof undiciFetch>[0], { ...(init as Parameters<typeof undiciFetch>[1]), dispatcher })) as unknown as Response;
    } catch (e) {
      const cause = (e as { cause?: unknown }).cause;
      throw cause instanceof AttestationError ? cause : e;
    }
  };
  return Object.assign(f, {
    agent,
    ready: () => agent.ready(),
    verdictFor: (response: ResponseLike | string, o?: { timeoutMs?: number }) => verdictFor(response, o),
    close: () => agent.close(),
  }) as AttestedFetch;
}

/**
 * The receipt verdict of an exchange made by any live `AttestedAgent` in this process (receipts
 * on): waits until the receipt is fetched, verified and recorded, or `timeoutMs` passed (default:
 * the receipt deadline plus 5 s; then `status` is still `pending`). An answer that carries no
 * receipt (an error status, a failed exchange) resolves with verdict `none`.
 *
 * @example
 * ```ts
 * import { verdictFor } from 'tresor-attest'
 * const res = await fetch(`${baseURL}/chat/completions`, { method: 'POST', headers, body }) // an attestedFetch
 * await res.json()
 * const { verdict, code, checks } = await verdictFor(res)
 * ```
 */
export async function verdictFor(response: ResponseLike | string, options: { timeoutMs?: number } = {}): Promise<VerdictSummary> {
  const id = typeof response === 'string' ? response : headerOf(response, REQUEST_ID_HEADER);
  if (!id) {
    throw new UsageError('ERR_RECEIPT_NO_EXCHANGE', `the response has no ${REQUEST_ID_HEADER} header: it did not come through an AttestedAgent with receipts on, or is not a completion`);
  }
  for (const agent of liveAgents) {
    const v = await agent.verdictOf(id, options.timeoutMs ?? (await agent.verdictTimeoutMs()));
    if (v) return v;
  }
  throw new UsageError('ERR_RECEIPT_NO_EXCHANGE', `no live AttestedAgent made the exchange ${id} (closed, or too long ago)`);
}

function headerOf(r: ResponseLike, name: string): string | undefined {
  const h = r.headers as { get?: unknown } & Record<string, unknown>;
  const v = typeof h.get === 'function' ? (h.get as (n: string) => string | null)(name) : h[name];
  return Array.isArray(v) ? v[0] : typeof v === 'string' ? v : undefined;
}
