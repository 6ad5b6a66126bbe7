/**
 * A named check and the one rule that turns checks into a verdict: shared by the receipt,
 * evidence-profile and audit modules, so it sits below all of them.
 */
export type CheckResult = 'pass' | 'fail' | 'unverifiable' | 'skip';

export interface Check {
  name: string;
  result: CheckResult;
  code?: string;
  detail?: string;
}

export type Verdict = 'verified' | 'failed' | 'unverifiable';

/**
 * The one rule that turns checks into a receipt verdict (docs/wire.md §2.1): `failed` if any
 * check fails (its code), else `unverifiable` if any check could not run (its code), else
 * `verified`. A `skip` never counts: checks skip only when there is nothing to compare (the app
 * saw no such value, the block is absent, the trust bundle lists no receipt keys) or when they
 * are informational (`receipt_signature`, `inference_attestation` without a policy). A check
 * that could not run is `unverifiable`, never `skip` or `pass`.
 */
export function verdictFromChecks(checks: readonly Check[]): { verdict: Verdict; code?: string } {
  const failed = checks.find((k) => k.result === 'fail');
  if (failed) return { verdict: 'failed', code: failed.code ?? 'ERR_RECEIPT_CHECK_FAILED' };
  const open = checks.find((k) => k.result === 'unverifiable');
  if (open) return { verdict: 'unverifiable', code: open.code ?? 'ERR_RECEIPT_CHECK_UNVERIFIABLE' };
  return { verdict: 'verified' };
}

/** Checks that are not `pass`, for the status page and `tresor-verify audit`: `name: result (detail)`. */
export function notPassed(checks: readonly Check[] | undefined): string[] {
  return (checks ?? []).filter((k) => k.result !== 'pass').map((k) => `${k.name}: ${k.result}${k.code ? ` ${k.code}` : ''}${k.detail ? ` (${k.detail})` : ''}`);
}
