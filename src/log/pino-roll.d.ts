/** The part of pino-roll (no bundled types) the daemon uses: a SonicBoom stream that rolls files by size. */
declare module 'pino-roll' {
  import type { EventEmitter } from 'node:events';
  interface PinoRollStream extends EventEmitter {
    write(chunk: string): boolean;
    flush(cb?: (err?: Error | null) => void): void;
    end(): void;
    readonly file: string;
  }
  function pinoRoll(options: {
    file: string;
    size?: string | number;
    frequency?: string | number;
    extension?: string;
    symlink?: boolean;
    limit?: { count: number; removeOtherLogFiles?: boolean };
    mkdir?: boolean;
    mode?: number;
    sync?: boolean;
    minLength?: number;
  }): Promise<PinoRollStream>;
  export default pinoRoll;
}
