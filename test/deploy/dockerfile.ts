import { readFileSync } from 'node:fs';
import { ROOT } from '../helpers/spawn.js';

/** One Dockerfile instruction (continuation lines joined, comments dropped). */
export interface Instruction {
  op: string;
  args: string;
  stage: number;
}

/** A small Dockerfile reader for tests: instructions in order, with the build stage they belong to. */
export function readDockerfile(path = `${ROOT}Dockerfile`): Instruction[] {
  const out: Instruction[] = [];
  let stage = -1;
  let pending = '';
  for (const raw of readFileSync(path, 'utf8').split('\n')) {
    if (/^\s*#/.test(raw) && pending === '') continue;
    const line = pending + raw.trim();
    if (line.endsWith('\\')) {
      pending = `${line.slice(0, -1).trim()} `;
      continue;
    }
    pending = '';
    if (!line) continue;
    const m = /^([A-Z]+)\s+(.*)$/.exec(line);
    if (!m) throw new Error(`not an instruction: ${line}`);
    if (m[1] === 'FROM') stage++;
    out.push({ op: m[1] as string, args: m[2] as string, stage });
  }
  return out;
}

/** The exec form of an instruction (`["a","b"]`), after any `--flag=...` options. */
export function execForm(args: string): string[] {
  const json = args.slice(args.indexOf('['));
  const v = JSON.parse(json) as unknown;
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) throw new Error(`not an exec form: ${args}`);
  return v as string[];
}

/** ENV instructions of a stage as a map (`ENV A=1 B=2` form). */
export function envOf(instructions: Instruction[], stage: number): Record<string, string> {
  const env: Record<string, string> = {};
  for (const i of instructions.filter((x) => x.op === 'ENV' && x.stage === stage)) {
    for (const m of i.args.matchAll(/([A-Z_][A-Z0-9_]*)=("[^"]*"|\S+)/g)) env[m[1] as string] = (m[2] as string).replace(/^"|"$/g, '');
  }
  return env;
}
