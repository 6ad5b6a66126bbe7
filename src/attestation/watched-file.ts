import { readFileSync, statSync } from 'node:fs';
import { describeCause, FetchError } from '../errors/index.js';

/**
 * Trust material an operator keeps fresh on disk (DCAP collateral, AMD's CRL): parsed once and
 * re-read when the file changes (mtime or size), so a refresh is picked up without a restart. An
 * unreadable file is a FetchError(`code`) naming the setting; parse errors pass through.
 */
export function watchedFile<T>(file: string, key: string, code: string, parse: (data: Buffer) => T): () => T {
  let cached: { stamp: string; value: T } | undefined;
  return () => {
    let data: Buffer;
    let stamp: string;
    try {
      const st = statSync(file);
      stamp = `${st.mtimeMs}:${st.size}`;
      if (cached?.stamp === stamp) return cached.value;
      data = readFileSync(file);
    } catch (e) {
      throw new FetchError(code, `${key}: cannot read ${file}: ${describeCause(e, { code: true })}`);
    }
    const value = parse(data);
    cached = { stamp, value };
    return value;
  };
}
