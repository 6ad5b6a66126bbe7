import type { Phase } from '../errors/index.js';

/**
 * The documented exit codes of both programs (docs/cli.md). One table, derived from the
 * error phase, so every command fails the same way.
 */
export const EXIT = {
  ok: 0,
  internal: 1,
  usage: 2,
  malformed: 3,
  verify: 4,
  policy: 5,
  fetch: 6,
  upstream: 7,
} as const;

export function exitCodeFor(phase: Phase): number {
  switch (phase) {
    case 'usage':
      return EXIT.usage;
    case 'malformed':
      return EXIT.malformed;
    case 'verify':
      return EXIT.verify;
    case 'policy':
      return EXIT.policy;
    case 'fetch':
      return EXIT.fetch;
    case 'upstream':
      return EXIT.upstream;
    case 'internal':
      return EXIT.internal;
  }
}
