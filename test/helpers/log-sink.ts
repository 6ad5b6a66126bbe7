import { Writable } from 'node:stream';
import type { DestinationStream } from 'pino';

/** Captures pino JSON lines (raw text and parsed) for assertions. */
export class LogSink extends Writable implements DestinationStream {
  readonly lines: string[] = [];

  constructor() {
    super({
      write: (chunk: Buffer, _enc, cb) => {
        for (const line of chunk.toString('utf8').split('\n')) if (line) this.lines.push(line);
        cb();
      },
    });
  }

  get records(): Record<string, unknown>[] {
    return this.lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  }

  get text(): string {
    return this.lines.join('\n');
  }
}
