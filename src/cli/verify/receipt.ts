import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { Argv, CommandModule } from 'yargs';
import { MalformedError, PolicyError, UsageError } from '../../errors/index.js';
import { createRemoteJwks, createStaticJwks } from '../../receipts/jwks.js';
import type { KeyResolver } from '../../receipts/jws.js';
import { verifyReceiptJws } from '../../receipts/verify.js';
import { evaluateReceipt } from '../../receipts/verdict.js';
import { boundedFetcher, checkFetchUrl } from '../../util/fetch.js';
import { readInput } from '../input.js';
import { runCommand } from '../output.js';

interface ReceiptArgs {
  input: string;
  'jwks-url'?: string;
  'jwks-file'?: string;
  'request-body'?: string;
  'response-body'?: string;
  json: boolean;
}

/** Accepts the whole `GET /v1/receipts/{id}` response (`{"id","receipt"}`) or a bare compact JWS. */
export function receiptFromInput(text: string): { id?: string; jws: string } {
  const t = text.trim();
  if (t.startsWith('{')) {
    let doc: unknown;
    try {
      doc = JSON.parse(t);
    } catch {
      throw new MalformedError('ERR_RECEIPT_MALFORMED', 'input looks like JSON but does not parse');
    }
    const { id, receipt } = doc as { id?: unknown; receipt?: unknown };
    if (typeof receipt !== 'string') throw new MalformedError('ERR_RECEIPT_MALFORMED', 'expected {"id","receipt"} with a compact JWS in "receipt"');
    return { ...(typeof id === 'string' ? { id } : {}), jws: receipt };
  }
  return { jws: t };
}

const sha256File = async (path: string) => new Uint8Array(createHash('sha256').update(await readFile(path).catch((e: NodeJS.ErrnoException) => {
  throw new UsageError('ERR_USAGE_INPUT_UNREADABLE', `cannot read ${path}: ${e.code ?? e.message}`);
})).digest());

export const receiptCommand: CommandModule<object, ReceiptArgs> = {
  command: 'receipt <input>',
  describe: 'Verify a signed receipt (the {id, receipt} response or a bare JWS; - for stdin)',
  builder: (y: Argv) =>
    y
      .positional('input', { type: 'string', demandOption: true, describe: 'File with the receipt, or - for standard input' })
      .option('jwks-url', { type: 'string', describe: "The router's JWKS, e.g. https://api.tresor.co/.well-known/jwks.json" })
      .option('jwks-file', { type: 'string', describe: 'A JWKS saved to a file (offline)' })
      .option('request-body', { type: 'string', describe: 'The exact request body sent: checked against request_digest' })
      .option('response-body', { type: 'string', describe: 'The exact response body received (whole SSE stream): checked against response_digest' })
      .option('json', { type: 'boolean', default: false, describe: 'Print one JSON object' })
      .check((a) => {
        if (!a['jwks-url'] === !a['jwks-file']) throw new UsageError('ERR_USAGE_BAD_FLAG', 'give exactly one of --jwks-url or --jwks-file');
        return true;
      })
      .example('curl -s https://api.tresor.co/v1/receipts/ID -H "Authorization: Bearer $TRESOR_API_KEY" | $0 receipt --jwks-url https://api.tresor.co/.well-known/jwks.json -', '') as Argv<ReceiptArgs>,
  handler: (args) =>
    runCommand(args.json, async () => {
      const { id, jws } = receiptFromInput(Buffer.from(await readInput(args.input)).toString('utf8'));
      let resolveKey: KeyResolver;
      if (args['jwks-file']) {
        const text = await readFile(args['jwks-file']).catch((e: NodeJS.ErrnoException) => {
          throw new UsageError('ERR_USAGE_INPUT_UNREADABLE', `cannot read ${args['jwks-file']}: ${e.code ?? e.message}`);
        });
        resolveKey = (await createStaticJwks(text)).resolve;
      } else {
        const url = checkFetchUrl(args['jwks-url'] as string, '--jwks-url').toString();
        resolveKey = createRemoteJwks({ url, fetcher: boundedFetcher({ maxBytes: 64 * 1024, timeoutMs: 10_000 }), clock: () => new Date() }).resolve;
      }
      const verified = await verifyReceiptJws(jws, { resolveKey });
      const verdict = await evaluateReceipt(verified, {
        ...(id ? { receiptId: id } : {}),
        ...(args['request-body'] ? { requestSha256: await sha256File(args['request-body']) } : {}),
        ...(args['response-body'] ? { responseSha256: await sha256File(args['response-body']) } : {}),
      });
      const fields = { receipt_type: verdict.receipt_type, kid: verdict.kid, signature_encoding: verdict.signature_encoding, checks: verdict.checks, claims: verified.payload };
      const failed = verdict.checks.filter((c) => c.result === 'fail');
      if (failed.length > 0) {
        throw new PolicyError(failed.map((c) => ({ code: c.code ?? 'ERR_RECEIPT_CHECK', message: `${c.name}: ${c.detail ?? 'failed'}` })), { detail: fields });
      }
      const lines: [string, string][] = [
        ['Receipt type', verdict.receipt_type ?? '(not stated)'],
        ['Key ID', verdict.kid ?? '(none)'],
      ];
      if (verdict.signature_encoding === 'der') lines.push(['Signature', 'DER-encoded (non-standard for JWS; accepted)']);
      for (const c of verdict.checks) {
        if ((c.name === 'request_digest' || c.name === 'response_digest') && c.result !== 'skip') lines.push([c.name === 'request_digest' ? 'Request digest' : 'Response digest', c.result === 'pass' ? 'match' : `${c.result}: ${c.detail}`]);
      }
      return { lines, fields };
    }),
};
