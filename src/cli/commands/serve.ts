import type { Argv, CommandModule } from 'yargs';
import { loadConfig } from '../../config/load.js';
import { toTresorError } from '../../errors/index.js';
import { createLogger, flushLogger } from '../../log/logger.js';
import { startDaemon } from '../../proxy/daemon.js';
import { EXIT, exitCodeFor } from '../exit-codes.js';
import { openLogFile, type LogFile } from '../../log/file.js';
import { applyArrayBufferSweeping, applyHeapGrowing } from '../../util/heap.js';

interface ServeArgs {
  config?: string;
  listen?: string;
  upstream?: string;
  'ca-file'?: string;
  'log-level'?: string;
  'log-format'?: string;
  'log-file'?: string;
  'state-dir'?: string;
}

export const serveCommand: CommandModule<object, ServeArgs> = {
  command: 'serve',
  describe: 'Run the proxy daemon (apps set OPENAI_BASE_URL=http://127.0.0.1:8787/v1)',
  builder: (y: Argv) =>
    y
      .option('config', { type: 'string', describe: 'YAML config file (default: $TRESOR_ATTEST_CONFIG; none is fine)' })
      .option('listen', { type: 'string', describe: 'HOST:PORT for the first upstream (default 127.0.0.1:8787)' })
      .option('upstream', { type: 'string', describe: 'Base URL of the first upstream (default https://api.tresor.co)' })
      .option('ca-file', { type: 'string', describe: 'Extra CA certificate (PEM) to trust for the first upstream' })
      .option('log-level', { type: 'string', describe: 'trace|debug|info|warn|error|fatal|silent' })
      .option('log-format', { type: 'string', describe: 'json (default) or pretty' })
      .option('log-file', { type: 'string', describe: 'Write logs to this file, rotated by size (log.max_file_bytes, log.retention_files), instead of stdout' })
      .option('state-dir', { type: 'string', describe: 'Directory for durable state (created 0700)' })
      .epilog(
        'The API key is never a flag: set $TRESOR_API_KEY (or the upstream\'s api_key_env) or api_key_file.\n' +
          'Attestation is enforced by default: pin the release-root key with $TRESOR_ATTEST_RELEASE_ROOT_FILE (or\n' +
          'attestation.release_root_file); forwarding without it needs attestation.mode: off, chosen explicitly.\n' +
          'Hardware roots are the vendors\' (certs/); test roots such as the simulator\'s test-roots.pem need\n' +
          '$TRESOR_ATTEST_TEST_ROOTS_FILE (attestation.test_roots_file). attestation.require_nonce: true refuses evidence\n' +
          'that is not nonce-bound; profile pinaivu (no TLS channel binding) needs attestation.allow_unbound_channel: true.\n' +
          'A non-loopback --listen needs a local token file (local_token_file, $TRESOR_ATTEST_LOCAL_TOKEN_FILE) that apps\n' +
          'present, unless allow_unauthenticated_listen: true. Every listener serves /healthz, /readyz, /status,\n' +
          '/metrics and the status page (/).\n' +
          'One daemon per state directory (a lock file; a second one exits 2 naming the first one\'s pid). If the audit log does\n' +
          'not match audit.head the daemon refuses to start (exit 4): `tresor-attest audit repair` records the loss as a gap.\n' +
          'Precedence: flags > TRESOR_ATTEST_* environment > config file > defaults. See config.example.yaml.',
      ) as Argv<ServeArgs>,
  handler: async (args) => {
    let config;
    try {
      config = await loadConfig({
        file: args.config,
        overrides: {
          listen: args.listen,
          upstream: args.upstream,
          ca_file: args['ca-file'],
          log_level: args['log-level'],
          log_format: args['log-format'],
          log_file: args['log-file'],
          state_dir: args['state-dir'],
        },
      });
    } catch (e) {
      const err = toTresorError(e);
      process.stderr.write(`tresor-attest: ${err.message}\n`);
      process.exit(exitCodeFor(err.phase));
    }
    let logFile: LogFile | undefined;
    try {
      if (config.log.file) logFile = await openLogFile({ file: config.log.file, maxFileBytes: config.log.max_file_bytes, retentionFiles: config.log.retention_files });
    } catch (e) {
      process.stderr.write(`tresor-attest: log.file: cannot open ${config.log.file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}\n`);
      process.exit(EXIT.usage);
    }
    const logger = createLogger({ ...config.log, ...(logFile ? { destination: logFile } : {}) });
    // Process-wide V8 settings, said in the log (a flag cannot be read back from the process).
    const v8Flags = [applyHeapGrowing(config.memory.heap_growing_percent), applyArrayBufferSweeping(config.memory.concurrent_array_buffer_sweeping)].filter((f) => f !== undefined);
    logger.info({ event: 'v8.flags', flags: v8Flags }, `V8 flags set for this process (memory.*): ${v8Flags.join(' ') || 'none'}`);
    const exit = async (code: number) => {
      await flushLogger(logger);
      await logFile?.close();
      process.exit(code);
    };
    let daemon;
    try {
      daemon = await startDaemon(config, { logger });
    } catch (e) {
      const err = toTresorError(e);
      logger.fatal({ code: err.code }, err.message);
      process.stderr.write(`tresor-attest: ${err.message}\n`);
      await exit(exitCodeFor(err.phase));
      return;
    }
    const running = daemon;
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      logger.info({ signal }, signal === 'launcher-exit' ? 'the npm process that started the daemon is gone: stopping' : 'signal received');
      running.close().then(
        () => exit(0),
        (e: unknown) => {
          logger.error({ err: { message: (e as Error).message } }, 'error during shutdown');
          return exit(1);
        },
      );
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
    stopWithLauncher(process.env, () => stop('launcher-exit'));
  },
};

/**
 * Started by npm (`npx tresor-attest serve`, `npm exec`, `npm run`), the daemon runs under
 * `npm → sh -c → node`: a SIGTERM to npm reaches the shell, which dies without passing it on, and
 * the daemon would be left running as an orphan. So under npm it watches its parent and stops (as
 * on SIGTERM: drain, exit 0) once the parent is gone. Anywhere else (a service manager, a
 * container, `nohup`) nothing changes.
 */
export function stopWithLauncher(env: NodeJS.ProcessEnv, stop: () => void, intervalMs = 500): void {
  if (!env.npm_lifecycle_event) return;
  const parent = process.ppid;
  const timer = setInterval(() => {
    if (process.ppid === parent) return;
    clearInterval(timer);
    stop();
  }, intervalMs);
  timer.unref();
}
