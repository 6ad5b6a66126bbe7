import { ViolationCollector } from '../../errors/index.js';
import type { Verified } from '../../types.js';
import { bytesEqual, isAllZero, toHex } from '../../util/bytes.js';
import { DEFAULT_MAX_AGE_SECONDS, FUTURE_SKEW_SECONDS } from './constants.js';
import type { VerifiedNitro } from './verify.js';

/** An allowed set of PCR values: every listed index must equal (lowercase hex). */
export type PcrSet = Readonly<Record<string, string>>;

export interface NitroPolicy {
  /** Alternative allowed PCR sets; empty or absent means "no PCR allowlist" (only use with a binding). */
  allowedPcrs?: readonly PcrSet[];
  /** Accept debug enclaves (PCR0, PCR1 and PCR2 all zero). Never in production. */
  allowDebug?: boolean;
  expectedNonce?: Uint8Array;
  expectedUserData?: Uint8Array;
  expectedPublicKey?: Uint8Array;
  /** Reject documents older than this at `at` (default 600 s); `null` disables (recorded vectors). */
  maxAgeSeconds?: number | null;
}

/** Policy over a verified document only. Collects every violation, then throws one PolicyError. */
export function evaluateNitroPolicy(doc: Verified<VerifiedNitro>, policy: NitroPolicy, opts: { at: Date }): void {
  const v = new ViolationCollector();
  const pcr = (i: number) => doc.pcrs.get(i);
  const debug = [0, 1, 2].every((i) => {
    const p = pcr(i);
    return p !== undefined && isAllZero(p);
  });
  if (debug && !policy.allowDebug) {
    v.add('ERR_POLICY_DEBUG_ENCLAVE', 'PCR0, PCR1 and PCR2 are all zero: a debug-mode enclave, whose memory the host can read');
  }
  if (policy.allowedPcrs && policy.allowedPcrs.length > 0) {
    // An empty set never matches: `every` over no entries would allow any enclave.
    const matches = policy.allowedPcrs.some(
      (set) =>
        Object.keys(set).length > 0 &&
        Object.entries(set).every(([i, hex]) => {
        const p = pcr(Number(i));
          return p !== undefined && toHex(p) === hex.toLowerCase();
        }),
    );
    if (!matches) {
      v.add('ERR_POLICY_PCR_MISMATCH', `the PCRs match none of the ${policy.allowedPcrs.length} allowed set(s) (PCR0 ${pcr(0) ? toHex(pcr(0) as Uint8Array) : 'absent'})`, {
        pcr0: pcr(0) ? toHex(pcr(0) as Uint8Array) : null,
      });
    }
  }
  const check = (want: Uint8Array | undefined, got: Uint8Array | undefined, code: string, field: string) => {
    if (want === undefined) return;
    if (got === undefined || !bytesEqual(want, got)) {
      v.add(code, `expected ${field} ${toHex(want)}, got ${got === undefined ? 'none' : toHex(got)}`);
    }
  };
  check(policy.expectedNonce, doc.nonce, 'ERR_POLICY_NONCE', 'nonce');
  check(policy.expectedUserData, doc.userData, 'ERR_POLICY_USER_DATA', 'user_data');
  check(policy.expectedPublicKey, doc.publicKey, 'ERR_POLICY_PUBLIC_KEY', 'public_key');
  const maxAge = policy.maxAgeSeconds === undefined ? DEFAULT_MAX_AGE_SECONDS : policy.maxAgeSeconds;
  if (maxAge !== null) {
    const ageSeconds = (opts.at.getTime() - doc.timestamp) / 1000;
    if (ageSeconds > maxAge) v.add('ERR_POLICY_STALE', `the document is ${Math.round(ageSeconds)} s old, more than the ${maxAge} s allowed`);
    if (ageSeconds < -FUTURE_SKEW_SECONDS) v.add('ERR_POLICY_STALE', `the document timestamp is ${Math.round(-ageSeconds)} s in the future`);
  }
  v.throwIfAny();
}
