import type { Argv, CommandModule } from 'yargs';
import { request } from 'undici';
import { readFileSync } from 'node:fs';
import { LOCAL_TOKEN_HEADER } from '../../proxy/local-auth.js';
import { EXIT } from '../exit-codes.js';

interface StatusArgs {
  url: string;
  json: boolean;
  health: boolean;
  'token-file'?: string;
}

interface StatusBody {
  version: string;
  uptimeSeconds: number;
  shuttingDown: boolean;
  upstreams: {
    name: string;
    url: string;
    listen?: string;
    ready: { ready: boolean; reason?: string };
    counters: Record<string, number>;
    attestation?: {
      mode: string;
      testRoots?: string[] | null;
      identities?: { kind: string; measurement?: string; tag?: string; expiresAt: string; freshness?: string; channel?: string }[];
      lastError?: { code: string };
    };
  }[];
}

export const statusCommand: CommandModule<object, StatusArgs> = {
  command: 'status',
  describe: 'Show the status of a running daemon (reads its /status)',
  builder: (y: Argv) =>
    y
      .option('url', { type: 'string', default: 'http://127.0.0.1:8787', describe: 'Base URL of the daemon' })
      .option('json', { type: 'boolean', default: false, describe: 'Print the raw /status JSON' })
      .option('token-file', { type: 'string', describe: "File with the listener's local token (default: $TRESOR_ATTEST_LOCAL_TOKEN_FILE)" })
      .option('health', { type: 'boolean', default: false, describe: 'Exit 0 only if the daemon answers /healthz (for container health checks)' }) as Argv<StatusArgs>,
  handler: async (args) => {
    const base = args.url.replace(/\/+$/, '');
    try {
      if (args.health) {
        const res = await request(`${base}/healthz`, { headersTimeout: 2000, bodyTimeout: 2000 });
        await res.body.dump();
        process.exitCode = res.statusCode === 200 ? EXIT.ok : EXIT.upstream;
        return;
      }
      const tokenFile = args['token-file'] ?? (process.env.TRESOR_ATTEST_LOCAL_TOKEN_FILE || undefined);
      const headers: Record<string, string> = tokenFile ? { [LOCAL_TOKEN_HEADER]: readFileSync(tokenFile, 'utf8').trim() } : {};
      const res = await request(`${base}/status`, { headers, headersTimeout: 5000, bodyTimeout: 5000 });
      const text = await res.body.text();
      if (res.statusCode === 401) throw new Error('GET /status answered 401: this listener requires its local token (--token-file)');
      if (res.statusCode !== 200) throw new Error(`GET /status answered ${res.statusCode}`);
      if (args.json) {
        process.stdout.write(`${text}\n`);
        return;
      }
      const s = JSON.parse(text) as StatusBody;
      process.stdout.write(`tresor-attest ${s.version}, up ${s.uptimeSeconds} s${s.shuttingDown ? ' (shutting down)' : ''}\n`);
      for (const u of s.upstreams) {
        process.stdout.write(`\nupstream ${u.name}: ${u.url}\n`);
        process.stdout.write(`  listen:      ${u.listen ?? '-'}\n`);
        process.stdout.write(`  ready:       ${u.ready.ready ? 'yes' : `no (${u.ready.reason ?? 'unknown'})`}\n`);
        if (u.attestation) {
          process.stdout.write(`  attestation: ${u.attestation.mode}\n`);
          for (const id of u.attestation.identities ?? []) {
            process.stdout.write(`    ${id.kind} ${id.measurement ?? ''} tag ${id.tag ?? '-'} expires ${id.expiresAt}; ${id.freshness}; channel: ${id.channel}\n`);
          }
          if (u.attestation.testRoots) process.stdout.write(`    test roots:  ${u.attestation.testRoots.join(', ')}\n`);
          if (u.attestation.lastError) process.stdout.write(`    last error: ${u.attestation.lastError.code}\n`);
        }
        const c = u.counters;
        process.stdout.write(`  requests:    ${c.requests} (errors ${c.errors}, in flight ${c.inFlight})\n`);
      }
    } catch (e) {
      process.stderr.write(`tresor-attest status: cannot read ${base}: ${(e as Error).message}\n`);
      process.exitCode = EXIT.upstream;
    }
  },
};
