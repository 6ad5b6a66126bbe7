import { readFileSync } from 'node:fs';

/** A real vector from test/vectors (copied from the shared set; see its README). */
export function vector(name: string): Uint8Array {
  return new Uint8Array(readFileSync(new URL(`../vectors/${name}`, import.meta.url)));
}

export const vectorPath = (name: string) => new URL(`../vectors/${name}`, import.meta.url).pathname;
