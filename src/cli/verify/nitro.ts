import { readFileSync } from 'node:fs';
import type { Argv, CommandModule } from 'yargs';
import { UsageError } from '../../errors/index.js';
import { evaluateNitroPolicy, loadNitroRoots, parseNitroDocument, verifyNitroDocument, type NitroDocument } from '../../evidence/nitro/index.js';
import { fromHex, toHex } from '../../util/bytes.js';
import { parsePemCertificates } from '../../x509/certificate.js';
import { decodeBinaryInput, parseAt, readInput } from '../input.js';
import { runCommand } from '../output.js';

interface NitroArgs {
  file: string;
  at?: string;
  root?: string;
  pcr: string[];
  nonce?: string;
  'allow-debug': boolean;
  'max-age'?: number;
  json: boolean;
}

/** `--pcr N=HEX` flags form one allowed PCR set. */
export function parsePcrFlags(values: readonly string[]): Record<string, string> {
  const set: Record<string, string> = {};
  for (const v of values) {
    const m = /^(\d{1,2})=([0-9a-fA-F]+)$/.exec(v);
    if (!m || Number(m[1]) > 31 || ![64, 96, 128].includes((m[2] as string).length)) {
      throw new UsageError('ERR_USAGE_BAD_PCR', `--pcr: expected N=HEX with N in 0..31 and 32, 48 or 64 bytes of hex, got ${JSON.stringify(v)}`);
    }
    set[m[1] as string] = (m[2] as string).toLowerCase();
  }
  return set;
}

function fields(doc: NitroDocument) {
  return {
    module_id: doc.moduleId,
    timestamp: new Date(doc.timestamp).toISOString(),
    digest: doc.digest,
    pcrs: Object.fromEntries([...doc.pcrs].map(([i, v]) => [String(i), toHex(v)])),
    public_key: doc.publicKey ? toHex(doc.publicKey) : null,
    user_data: doc.userData ? toHex(doc.userData) : null,
    nonce: doc.nonce ? toHex(doc.nonce) : null,
    cabundle_length: doc.cabundle.length,
    tagged: doc.tagged,
  };
}

export const nitroCommand: CommandModule<object, NitroArgs> = {
  command: 'nitro <file>',
  describe: 'Verify an AWS Nitro attestation document (COSE_Sign1; raw, base64 or hex; - for stdin)',
  builder: (y: Argv) =>
    y
      .positional('file', { type: 'string', demandOption: true, describe: 'The document, or - for standard input' })
      .option('at', { type: 'string', describe: 'Verify at this ISO 8601 time (default: now); recorded documents verify at their own time' })
      .option('root', { type: 'string', describe: 'Trust this root (PEM) instead of the pinned AWS Nitro root G1' })
      .option('pcr', { type: 'string', array: true, default: [], describe: 'Expected PCR value N=HEX (repeatable; together one allowed set)' })
      .option('nonce', { type: 'string', describe: 'Expected nonce (hex)' })
      .option('allow-debug', { type: 'boolean', default: false, describe: 'Accept debug enclaves (all-zero PCR0/1/2)' })
      .option('max-age', { type: 'number', describe: 'Maximum age in seconds at --at (default: unchecked when --at is given, 600 otherwise)' })
      .option('json', { type: 'boolean', default: false, describe: 'Print one JSON object' }) as Argv<NitroArgs>,
  handler: (args) => {
    let decoded: ReturnType<typeof fields> | undefined;
    return runCommand(args.json, async () => {
      const at = parseAt(args.at) ?? new Date();
      const roots = args.root ? parsePemCertificates(readFileSync(args.root, 'utf8'), args.root) : loadNitroRoots();
      if (roots.length === 0) throw new UsageError('ERR_USAGE_BAD_ROOT', `--root: no certificate in ${args.root}`);
      const pcrSet = parsePcrFlags(args.pcr);
      const doc = parseNitroDocument(decodeBinaryInput(await readInput(args.file)));
      decoded = fields(doc);
      const verified = verifyNitroDocument(doc, { at, roots });
      evaluateNitroPolicy(
        verified,
        {
          ...(Object.keys(pcrSet).length ? { allowedPcrs: [pcrSet] } : {}),
          allowDebug: args['allow-debug'],
          ...(args.nonce ? { expectedNonce: fromHex(args.nonce, { field: '--nonce' }) } : {}),
          maxAgeSeconds: args['max-age'] ?? (args.at ? null : 600),
        },
        { at },
      );
      const pcr = (i: number) => decoded?.pcrs[String(i)] ?? '(absent)';
      return {
        fields: decoded,
        lines: [
          ['Module ID', doc.moduleId],
          ['Timestamp', decoded.timestamp],
          ['PCR0', pcr(0)],
          ['PCR1', pcr(1)],
          ['PCR2', pcr(2)],
          ['PCR8', pcr(8)],
          ['public_key', doc.publicKey ? `${doc.publicKey.length} bytes` : 'none'],
          ['user_data', doc.userData ? `${doc.userData.length} bytes` : 'none'],
          ['nonce', doc.nonce ? `${doc.nonce.length} bytes` : 'none'],
        ],
      };
    }, () => decoded);
  },
};
