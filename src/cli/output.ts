import { toTresorError, PolicyError } from '../errors/index.js';
import { EXIT, exitCodeFor } from './exit-codes.js';

/**
 * Uniform result printing for `tresor-verify` commands.
 * Text mode: `PASS` then aligned `Label: value` lines, or `FAIL <code>: <message>` (plus every
 * policy violation). JSON mode: one object `{ ok, ...fields, error?: { code, message, phase } }`.
 */
export interface Outcome {
  /** Aligned lines printed after PASS, in order. */
  lines?: [string, string][];
  /** Decoded fields for --json. */
  fields?: Record<string, unknown>;
  /** Spaces between the longest `Label:` and its value (the docs use 2 for receipts, 1 for attest). */
  gap?: number;
}

export function printPass(outcome: Outcome, json: boolean): number {
  if (json) {
    process.stdout.write(`${JSON.stringify({ ok: true, ...(outcome.fields ?? {}) })}\n`);
  } else {
    const lines = outcome.lines ?? [];
    const width = Math.max(0, ...lines.map(([k]) => k.length + 1)) + (outcome.gap ?? 2);
    process.stdout.write('PASS\n');
    for (const [k, v] of lines) process.stdout.write(`${`${k}:`.padEnd(width)}${v}\n`);
  }
  return EXIT.ok;
}

export function printFail(e: unknown, json: boolean, fields: Record<string, unknown> = {}): number {
  const err = toTresorError(e);
  if (json) {
    process.stdout.write(
      `${JSON.stringify({
        ok: false,
        ...fields,
        error: {
          code: err.code,
          phase: err.phase,
          message: err.message,
          ...(err instanceof PolicyError ? { violations: err.violations } : {}),
        },
      })}\n`,
    );
  } else {
    process.stdout.write(`FAIL ${err.code}: ${err.message}\n`);
    if (err instanceof PolicyError && err.violations.length > 1) {
      for (const v of err.violations) process.stdout.write(`  - ${v.code}: ${v.message}\n`);
    }
  }
  return exitCodeFor(err.phase);
}

/**
 * Run a command body and exit with its code; never throws to yargs. `partial` supplies the
 * decoded fields known so far, so a failed `--json` run still shows what was parsed.
 */
export async function runCommand(json: boolean, body: () => Promise<Outcome>, partial?: () => Record<string, unknown> | undefined): Promise<void> {
  let code: number;
  try {
    code = printPass(await body(), json);
  } catch (e) {
    code = printFail(e, json, partial?.() ?? {});
  }
  process.exitCode = code;
}
