import type { AttestedIdentity } from '../attestation/identity.js';
import type { Clock } from '../types.js';
import type { AllowedKeys } from './jwks.js';
import type { Check, MaybePromise } from './verdict.js';

/** Which JWKS keys may sign a receipt now, and the `receipt_key` check that records why. */
export interface ReceiptKeyPolicy {
  /** Passed to the JWKS resolver; absent only when the check is `unverifiable` (then nothing is resolved). */
  allowed?: AllowedKeys;
  check: Omit<Check, 'name'>;
}

export interface ReceiptKeyPolicyDeps {
  /** The most recent fresh attested identity of the upstream (its trust bundle lists the receipt keys). */
  current: () => AttestedIdentity | undefined;
  /** Attestation off: no identity will ever be pinned, so there is nothing to wait for. */
  attestationOff: boolean;
  clock: Clock;
  sleep: (ms: number) => Promise<void>;
  /** How long to wait for a fresh identity before recording `unverifiable`. */
  waitMs: number;
  pollMs?: number;
}

const listsKeys = (k: AllowedKeys | undefined): k is AllowedKeys => k !== undefined && (k.thumbprints !== undefined || k.kids !== undefined);

/**
 * The receipt-key allowlist never fails open (docs/wire.md §2.1): the keys come from the trust
 * bundle of a fresh identity the daemon verified. Without one, wait until it has been missing
 * for `waitMs` (a refresh or a new connection may pin it), then `unverifiable` (`ERR_RECEIPT_KEY_UNPINNED`):
 * never "any key the JWKS serves". A bundle that lists no receipt keys leaves the JWKS of the
 * attested origin in force, recorded as `skip` with that reason.
 */
export function createReceiptKeyPolicy(deps: ReceiptKeyPolicyDeps): () => MaybePromise<ReceiptKeyPolicy> {
  const unpinned = (detail: string): ReceiptKeyPolicy => ({ check: { result: 'unverifiable', code: 'ERR_RECEIPT_KEY_UNPINNED', detail } });
  // The wait is measured from when the identity was first found missing, not per receipt: once
  // it has been missing for `waitMs`, further receipts are recorded at once instead of each
  // holding a worker for the whole bound (until an identity is pinned again).
  let missingSince: number | undefined;
  const fromIdentity = (id: AttestedIdentity): ReceiptKeyPolicy => {
    missingSince = undefined;
    const keys = id.receiptSigningKeys;
    const bundle = `trust bundle v${id.bundleVersion ?? '?'}`;
    if (listsKeys(keys)) return { allowed: keys, check: { result: 'pass', detail: `among the receipt signing keys of ${bundle}` } };
    // The identity in full, and ASCII only: this detail is in every receipt record of such a
    // bundle, and one non-ASCII character makes V8 hold the whole audit line as a two-byte string.
    return { allowed: {}, check: { result: 'skip', detail: `${bundle} lists no receipt signing keys: the JWKS of the attested origin (identity ${id.spkiSha256})` } };
  };
  // Whatever is known now is a value, not a promise: a promise only while an identity is awaited.
  const wait = async (): Promise<ReceiptKeyPolicy> => {
    for (;;) {
      const id = deps.current();
      if (id) return fromIdentity(id);
      missingSince ??= deps.clock().getTime();
      const waited = deps.clock().getTime() - missingSince;
      if (waited >= deps.waitMs) return unpinned(`no fresh attested identity within ${Math.round(deps.waitMs / 1000)} s: the trust bundle's receipt keys are unknown, no JWKS key is taken on trust`);
      await deps.sleep(Math.min(deps.pollMs ?? 100, deps.waitMs - waited));
    }
  };
  return () => {
    if (deps.attestationOff) return unpinned('attestation is off: no trust bundle says which keys may sign receipts');
    const id = deps.current();
    return id ? fromIdentity(id) : wait();
  };
}
