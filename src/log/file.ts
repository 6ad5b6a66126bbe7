import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { DestinationStream } from 'pino';

export interface LogFileOptions {
  /** Base path, e.g. /var/lib/tresor-attest/logs/tresor-attest.log → tresor-attest.1.log, .2.log, ... */
  file: string;
  /** Roll to the next file once the current one reaches this size. */
  maxFileBytes: number;
  /** Log files kept, the current one included; older ones are deleted at each roll. */
  retentionFiles: number;
}

export interface LogFile extends DestinationStream {
  /** Write out what is buffered, then close the file. */
  close(): Promise<void>;
}

/**
 * A pino destination writing JSON lines to size-rotated files (pino-roll: numbered files,
 * `current.log` symlink to the live one, the oldest deleted beyond the retention count). The
 * directory is created 0700 and the files 0600: logs carry request ids and routes, never keys
 * or bodies, but they are still operational data. pino-roll (and the ~300 date-fns modules it
 * brings) is loaded here, only when a log file is configured.
 */
export async function openLogFile(o: LogFileOptions): Promise<LogFile> {
  await mkdir(dirname(o.file), { recursive: true, mode: 0o700 });
  const { default: pinoRoll } = await import('pino-roll');
  const stream = await pinoRoll({
    file: o.file,
    size: `${o.maxFileBytes}b`,
    limit: { count: o.retentionFiles, removeOtherLogFiles: true },
    symlink: true,
    mode: 0o600,
  });
  // (pino-roll's own roll calls the stream's flush(cb): only `close` is added.)
  return Object.assign(stream, {
    close: () =>
      new Promise<void>((resolve) => {
        stream.flush(() => {
          stream.once('close', () => resolve());
          stream.end();
        });
      }),
  }) as unknown as LogFile;
}
