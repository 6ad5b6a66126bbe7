import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';

/** Every record of the audit log under `stateDir/audit` (all rotated files), parsed. */
export async function readAuditRecords(stateDir: string): Promise<Record<string, unknown>[]> {
  const auditDir = join(stateDir, 'audit');
  const files = (await readdir(auditDir)).filter((f) => f.startsWith('audit-') && f.endsWith('.jsonl')).sort();
  return (await Promise.all(files.map((f) => readFile(join(auditDir, f), 'utf8'))))
    .join('\n')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}
