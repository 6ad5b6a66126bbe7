import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { UpstreamConfig } from '../config/types.js';
import { ConfigError } from '../errors/index.js';
import { attestOverSocket, createBundleSource } from '../envelope/attest.js';
import { proxyFor } from '../proxy/connector.js';
import { loadReleaseRootKey } from '../trust/release-root.js';
import { RollbackStore } from '../trust/rollback.js';
import type { Clock } from '../types.js';
import type { AttestedIdentity } from './identity.js';
import type { AttestOverSocket } from './manager.js';

/**
 * The `tresor` profile's attestation step for the connection pinning manager: the router
 * envelope fetched over the new connection, verified against that connection's key, the trust
 * bundle from the configured location (rollback-protected in the state directory).
 */
export async function createTresorAttester(
  u: UpstreamConfig,
  deps: { clock: Clock; stateDir: string; caPem?: string | undefined; env?: Record<string, string | undefined> },
): Promise<AttestOverSocket> {
  const att = u.attestation;
  const file = att.release_root_file as string;
  const rootKey = loadReleaseRootKey(
    await readFile(file).catch((e: NodeJS.ErrnoException) => {
      throw new ConfigError('ERR_CONFIG_RELEASE_ROOT', `upstreams.${u.name}.attestation.release_root_file: cannot read ${file}: ${e.code ?? e.message}`);
    }),
  );
  const rollback = await RollbackStore.open(join(deps.stateDir, `trust-bundles-${u.name}.json`));
  const timeoutMs = u.timeouts.connect_seconds * 1000 + 10_000;
  // The bundle is fetched the way the router is reached: through HTTPS_PROXY unless NO_PROXY says otherwise.
  const bundles = createBundleSource({ locations: [att.trust_bundle], rootKey, caPem: deps.caPem, rollback, clock: deps.clock, timeoutMs, proxy: (h) => proxyFor(h, deps.env) });
  const url = new URL(u.url);
  return async ({ socket }) => {
    const at = deps.clock();
    const { attestation: a } = await attestOverSocket(socket, {
      host: url.host,
      basePath: url.pathname,
      bundles,
      at,
      policy: { allowDebug: att.allow_debug, requireNonce: att.require_nonce, maxAgeCapSeconds: att.max_age_seconds },
      timeoutMs,
    });
    const identity: AttestedIdentity = {
      spkiSha256: a.spkiSha256,
      kind: a.kind,
      measurement: a.measurement,
      tag: a.tag,
      bundleVersion: a.bundle.version,
      bundleValidUntil: a.bundle.validUntil,
      verifiedAt: at.toISOString(),
      expiresAt: a.expiresAt,
      summary: { kind: a.kind, measurement: a.measurement, tag: a.tag, manifest: a.manifest, bundle: a.bundle, issuedAt: a.issuedAt },
    };
    return identity;
  };
}
