import { generateKeyPairSync } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, relative } from 'node:path';
import OpenAI from 'openai';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import * as library from '../../src/index.js';
import { AttestationError, AttestationUnavailableError, toAttestationError } from '../../src/errors/attestation.js';
import { describeCause, FetchError } from '../../src/errors/index.js';
import { createBundleSource } from '../../src/envelope/attest.js';
import { ROOT } from '../helpers/spawn.js';

/**
 * The openai SDK (client.js `makeRequest`) turns a rejected fetch whose `String(err) +
 * String(err.cause)` matches this into `APIConnectionTimeoutError`, built without a cause: the
 * typed error would be gone. None of our errors may read like that.
 */
const OPENAI_TIMEOUT = /timed? ?out/i;

/** An OpenAI client whose fetch rejects with `err` (no retries: the wrapping is the same on each). */
const throughOpenAI = (err: Error) =>
  new OpenAI({ baseURL: 'http://127.0.0.1:9/v1', apiKey: 'x', maxRetries: 0, fetch: () => Promise.reject(err) }).models.list().then(
    () => undefined,
    (e: unknown) => e,
  );

/** A server that accepts and never answers: real undici and DOM deadline errors. */
let stall: Server;
let stallUrl: string;
beforeAll(async () => {
  stall = createServer(() => undefined);
  await new Promise<void>((r) => stall.listen(0, '127.0.0.1', r));
  stallUrl = `http://127.0.0.1:${(stall.address() as AddressInfo).port}`;
});
afterAll(() => {
  stall.closeAllConnections();
  stall.close();
});

describe('no attestation error reads as a timeout to the openai SDK (it would drop the typed cause)', () => {
  test('a trust bundle fetch that hits its deadline reaches openai as APIConnectionError with the typed cause', async () => {
    const rootKey = generateKeyPairSync('ed25519').publicKey;
    const bundles = createBundleSource({ locations: [`${stallUrl}/router.json`], rootKey, clock: () => new Date(), timeoutMs: 150 });
    const cause = await bundles.get(`${stallUrl}/router.json`).catch((e: unknown) => e);
    expect(cause).toBeInstanceOf(FetchError);
    expect(cause).toMatchObject({ code: 'ERR_BUNDLE_FETCH', message: expect.stringContaining('no answer within the deadline') });
    const typed = toAttestationError(cause);
    const err = await throughOpenAI(typed);
    expect(err).toBeInstanceOf(OpenAI.APIConnectionError);
    expect(err).not.toBeInstanceOf(OpenAI.APIConnectionTimeoutError);
    expect((err as Error).cause).toBe(typed);
    expect(typed).toBeInstanceOf(AttestationUnavailableError);
  });

  test('describeCause words real deadline errors (DOM, undici, errno) without "timeout"; other errors keep their text', async () => {
    const dom = await request(stallUrl, { signal: AbortSignal.timeout(50) }).catch((e: unknown) => e);
    const headers = await request(stallUrl, { headersTimeout: 50 }).catch((e: unknown) => e);
    const errno = Object.assign(new Error('connect ETIMEDOUT 10.0.0.1:443'), { code: 'ETIMEDOUT' });
    for (const e of [dom, headers, errno]) {
      // The raw errors do read as timeouts: this is what describeCause exists for.
      expect(String(e)).toMatch(OPENAI_TIMEOUT);
      expect(describeCause(e)).toBe('no answer within the deadline');
      expect(describeCause(e, { code: true })).toBe('no answer within the deadline');
    }
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9'), { code: 'ECONNREFUSED' });
    expect(describeCause(refused)).toBe('connect ECONNREFUSED 127.0.0.1:9');
    expect(describeCause(refused, { code: true })).toBe('ECONNREFUSED');
    expect(describeCause('plain')).toBe('plain');
  });

  const classes = Object.entries(library).filter(([, v]) => typeof v === 'function' && (v === AttestationError || (v as { prototype?: unknown }).prototype instanceof AttestationError));

  test.each(classes)('%s keeps its cause through openai (its name is not read as a timeout)', async (name, Named) => {
    const err = new (Named as typeof AttestationError)('fetch', 'ERR_TEST', `cannot fetch the evidence: ${describeCause(new DOMException('The operation was aborted due to timeout', 'TimeoutError'))}`, {
      cause: new FetchError('ERR_TEST', 'inner'),
    });
    expect(err.name).toBe(name);
    const seen = await throughOpenAI(err);
    expect(seen).not.toBeInstanceOf(OpenAI.APIConnectionTimeoutError);
    expect((seen as Error).cause).toBe(err);
  });

  test('every error message written in src/ avoids the wording (the code that talks to routers and trust services)', async () => {
    const offenders: string[] = [];
    for (const file of await sources(join(ROOT, 'src'))) {
      const rel = relative(ROOT, file);
      // Not the simulator or the CLI (never behind an SDK), nor configuration and telemetry set-up (read at
      // start-up; their messages name keys such as `timeouts.*` and `OTEL_EXPORTER_OTLP_TIMEOUT`).
      if (/^src\/(sim|cli|config|otlp)\//.test(rel)) continue;
      const text = await readFile(file, 'utf8');
      for (const call of errorConstructions(text)) {
        const literal = call.replace(/\$\{[^}]*\}/g, ' ');
        const quoted = [...literal.matchAll(/'([^'\n]*)'|`([^`]*)`|"([^"\n]*)"/g)].map((m) => m[1] ?? m[2] ?? m[3] ?? '');
        if (quoted.some((q) => OPENAI_TIMEOUT.test(q) && !/^ERR_\w+$/.test(q))) offenders.push(`${rel}: ${call.slice(0, 120)}`);
        // A foreign error's own text goes through describeCause, which words deadlines.
        for (const m of call.matchAll(/\$\{([^}]*)\}/g)) if (/\.message\b/.test(m[1] as string) && !/describeCause\(/.test(m[1] as string)) offenders.push(`${rel}: ${m[0]}`);
      }
    }
    expect(offenders).toEqual([]);
  });
});

async function sources(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    if (e.isDirectory()) out.push(...(await sources(join(dir, e.name))));
    else if (e.name.endsWith('.ts')) out.push(join(dir, e.name));
  }
  return out;
}

/** The argument text of each `new XxxError(` / `new BundleSignatureInvalid(` call, and of each policy violation `.add('ERR_…', …)`. */
function errorConstructions(text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(/new (\w*Error|BundleSignatureInvalid)\(|\.add\((?='ERR_)/g)) {
    let depth = 1;
    let i = (m.index as number) + m[0].length;
    for (; i < text.length && depth > 0; i++) depth += text[i] === '(' ? 1 : text[i] === ')' ? -1 : 0;
    out.push(text.slice((m.index as number) + m[0].length, i - 1));
  }
  return out;
}
