import { toPem } from '../../x509/certificate.js';
import type { AciDeployment } from './aci.js';
import type { NearDeployment } from './near.js';
import type { PinaivuDeployment } from './pinaivu.js';
import type { RouterEvidence } from './router.js';

/** The file name `tresor-attest sim --write-dir` (and the demo) give the simulator's test roots. */
export const TEST_ROOTS_FILE = 'test-roots.pem';

/**
 * Every root the simulator's evidence chains to, as one PEM file: the daemon's
 * `attestation.test_roots_file` (and `tresor-verify attest --test-roots`). These are software CAs:
 * test material, never a vendor's root.
 */
export function simTestRootsPem(d: { evidence?: RouterEvidence | undefined; aci?: AciDeployment | undefined; pinaivu?: PinaivuDeployment | undefined; near?: NearDeployment | undefined }): string {
  const roots = [d.evidence?.pki?.ark, d.evidence?.nitroPki?.root, d.aci?.tee === 'sev_snp' ? d.aci.pki.ark : undefined, d.aci?.intelRoot, d.pinaivu?.nitro.root, d.near?.pki.root];
  return roots.flatMap((r) => (r ? [toPem(r)] : [])).join('');
}
