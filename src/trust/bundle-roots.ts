import { VerificationError } from '../errors/index.js';
import type { Certificate } from '../x509/certificate.js';
import type { TrustBundle } from './verify-bundle.js';

/** How an operator allows test roots; named in every refusal so the fix is one line away. */
const HOW_TO_ALLOW =
  'a test root (such as the simulator\'s) is trusted only when the operator lists it in attestation.test_roots_file (`tresor-attest sim --write-dir DIR` writes DIR/test-roots.pem; `tresor-verify attest --test-roots FILE`)';

/**
 * A trust bundle may name the roots its evidence chains end at (`amd_ark_pem`, `nitro.root_pem`),
 * but it never adds a root: each must be byte-identical (same DER) to a pinned vendor root in
 * `certs/` or to one of the operator's test roots. Otherwise whoever holds the release key could
 * make the daemon accept evidence from a software CA.
 */
export function checkBundleRoots(
  bundle: Pick<TrustBundle, 'amdArks' | 'nitroRoots'>,
  anchors: { amdArks: readonly Certificate[]; nitroRoots: readonly Certificate[]; testRoots?: readonly Certificate[] | undefined },
): void {
  const allowed = (pinned: readonly Certificate[]) => new Set([...pinned, ...(anchors.testRoots ?? [])].map((c) => c.sha256));
  const check = (carried: readonly Certificate[], pinned: readonly Certificate[], code: string, field: string, vendor: string) => {
    const ok = allowed(pinned);
    const stray = carried.find((c) => !ok.has(c.sha256));
    if (stray) {
      throw new VerificationError(code, `the trust bundle's ${field} carries ${stray.subject} (DER SHA-256 ${stray.sha256}), which is not ${vendor} pinned in certs/; ${HOW_TO_ALLOW}`, {
        detail: { field, sha256: stray.sha256, subject: stray.subject },
      });
    }
  };
  check(bundle.amdArks, anchors.amdArks, 'ERR_BUNDLE_AMD_ARK_NOT_PINNED', 'amd_ark_pem', 'an AMD ARK');
  check(bundle.nitroRoots, anchors.nitroRoots, 'ERR_BUNDLE_NITRO_ROOT_NOT_PINNED', 'nitro.root_pem', 'the AWS Nitro root');
}
