import type { Logger } from 'pino';
import { PROFILE_BINDS_CHANNEL } from '../config/load.js';
import type { UpstreamConfig } from '../config/types.js';
import type { TestRoots } from './test-roots.js';

/**
 * Say loudly, once at start, where an upstream's attestation proves less than the default: test
 * roots trusted besides the vendors' (and the deprecated keys that brought them), or a profile
 * whose evidence cannot bind the TLS channel, accepted with `attestation.allow_unbound_channel`.
 */
export function warnTrustExceptions(u: UpstreamConfig, roots: TestRoots, logger: Logger): void {
  if (u.attestation.mode === 'off') return;
  if (roots.certs.length > 0) {
    logger.warn(
      { upstream: u.name, testRootsFiles: roots.files, testRoots: roots.certs.map((c) => ({ subject: c.subject, sha256: c.sha256 })) },
      `TEST ROOTS ARE TRUSTED for upstream "${u.name}" (${roots.files.join(', ')}): evidence from a software CA such as the simulator's verifies; never use this with a real router`,
    );
  }
  for (const key of roots.deprecatedKeys) {
    logger.warn({ upstream: u.name, key }, `${key} is deprecated: its roots count as test roots; list them in attestation.test_roots_file instead`);
  }
  if (!PROFILE_BINDS_CHANNEL[u.profile]) {
    logger.warn(
      { upstream: u.name, profile: u.profile, channel: 'unbound' },
      `THE TLS CHANNEL IS NOT BOUND for upstream "${u.name}" (profile ${u.profile}, allow_unbound_channel: true): its evidence binds no TLS key, so a TLS man in the middle holding a trusted certificate would see prompts and the API key; only signed proofs and receipts are verified`,
    );
  }
}
