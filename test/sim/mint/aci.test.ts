import { randomBytes } from 'node:crypto';
import { describe, expect, test } from 'vitest';
import { snpTeeVerifier, tdxTeeVerifier, verifyAciAttestation } from '../../../src/aci/index.js';
import { loadIntelSgxRoots } from '../../../src/evidence/tdx/index.js';
import { createAciDeployment } from '../../../src/sim/mint/aci.js';

const spki = 'ab'.repeat(32);

describe('simulated ACI deployments', () => {
  test('default: SEV-SNP evidence from the AMD-like test PKI', async () => {
    const aci = await createAciDeployment();
    expect(aci.tee).toBe('sev_snp');
    expect(aci.intelRoot).toBeUndefined();
    const nonce = randomBytes(32).toString('hex');
    const report = aci.attestation(spki, nonce);
    expect((report.attestation as { tee_type: string }).tee_type).toBe('sev_snp');
    const id = await verifyAciAttestation(report, { nonce, at: new Date(), liveSpkiSha256: spki, teeVerifier: snpTeeVerifier({ arks: [aci.pki.ark] }) });
    expect(id.tee.measurement).toBe(aci.measurement);
  });

  test('tee tdx: a quote v4, event log and app compose that verify to the simulated Intel root; the summary names MRTD as the attester reads it', async () => {
    const aci = await createAciDeployment({ tee: 'tdx' });
    const nonce = randomBytes(32).toString('hex');
    const report = aci.attestation(spki, nonce);
    const teeVerifier = tdxTeeVerifier({
      roots: [aci.intelRoot as NonNullable<typeof aci.intelRoot>],
      policy: { allowedMeasurements: [{ mrtd: aci.mrtd as string, ...aci.rtmrs }], allowedComposeHashes: [aci.composeHash as string] },
    });
    const id = await verifyAciAttestation(report, { nonce, at: new Date(), liveSpkiSha256: spki, teeVerifier });
    expect(id.teeType).toBe('tdx');
    // src/attestation/aci.ts allowlists `tee.measurement ?? tee.mrtd`.
    expect(id.tee.measurement ?? id.tee.mrtd).toBe(aci.measurement);
    expect(id.tee).toMatchObject({ mrtd: aci.mrtd, compose_hash: aci.composeHash, tcb_status: 'unknown' });
    expect((id.tee.rtmr as string[]).slice(0, 3)).toEqual([aci.rtmrs?.rtmr0, aci.rtmrs?.rtmr1, aci.rtmrs?.rtmr2]);

    // Another nonce is not what the quote's REPORTDATA binds; the real Intel root does not anchor the test PKI.
    await expect(verifyAciAttestation(report, { nonce: 'ee'.repeat(32), at: new Date(), teeVerifier })).rejects.toMatchObject({ code: 'ERR_ACI_REPORT_DATA' });
    await expect(verifyAciAttestation(report, { nonce, at: new Date(), teeVerifier: tdxTeeVerifier({ roots: loadIntelSgxRoots() }) })).rejects.toMatchObject({ code: 'ERR_CHAIN_UNTRUSTED' });
  });
});
