import { randomBytes } from 'node:crypto';
import type { JsonObject } from '../../aci/index.js';
import { toHex } from '../../util/bytes.js';
import type { Certificate } from '../../x509/certificate.js';
import { createTdxTestPki, mintDstackEventLog, mintTdxQuote, type TdxTestPki } from './tdx.js';

/** Switches that make one check of an ACI deployment's TDX evidence fail. */
export interface AciTdxFaults {
  /** TDATTRIBUTES.DEBUG set (ERR_POLICY_TDX_DEBUG). */
  debugTd?: boolean;
  /** The quote signature does not verify (ERR_TDX_QUOTE_SIGNATURE). */
  badQuoteSignature?: boolean;
  /** The QE report does not bind the attestation key (ERR_TDX_QE_BINDING). */
  badQeBinding?: boolean;
  /** The quote's RTMR3 is not what the event log replays to (ERR_POLICY_TDX_RTMR3_REPLAY). */
  rtmr3Mismatch?: boolean;
  /** Another app compose, consistently logged and replayed: only a compose-hash pin refuses it (ERR_POLICY_TDX_COMPOSE_HASH). */
  otherComposeHash?: boolean;
  /** `app_compose` other than the one the compose-hash event names (ERR_POLICY_TDX_APP_COMPOSE). */
  appComposeMismatch?: boolean;
  /** RTMR0-2 other than the deployment's: only an `allowed_rtmrs` set refuses them (ERR_POLICY_TDX_MEASUREMENT). */
  wrongRtmrs?: boolean;
  /** No `event_log` (nor `app_compose`) in the evidence: only a compose-hash pin refuses it (ERR_POLICY_TDX_COMPOSE_EVENT). */
  noEventLog?: boolean;
}

export interface AciTdxEvidence {
  pki: TdxTestPki;
  /** The simulated Intel SGX root: the daemon's `tdx.intel_root_file` (never a default). */
  intelRoot: Certificate;
  /** MRTD (96 hex): what `aci.allowed_measurements` must list. */
  mrtd: string;
  /** RTMR0-2 (96 hex each): an `allowed_rtmrs` set that matches. */
  rtmrs: { rtmr0: string; rtmr1: string; rtmr2: string };
  /** The dstack app compose and its hash (64 hex): an `allowed_compose_hashes` entry that matches. */
  appCompose: string;
  composeHash: string;
  /** `attestation.evidence` for a 64-byte REPORTDATA: `{quote, event_log, app_compose}`. */
  evidence(reportData: Uint8Array, faults: AciTdxFaults & { wrongMeasurement?: boolean }): JsonObject;
}

const composeOf = (name: string) =>
  JSON.stringify({ manifest_version: 2, name, runner: 'docker-compose', docker_compose_file: `services:\n  ${name}:\n    image: ghcr.io/example/${name}@sha256:${'0'.repeat(64)}\n` });

/**
 * dstack-like TDX evidence from the simulator's own Intel-like DCAP PKI: a quote v4 whose RTMR3
 * is the replay of a dstack event log naming the compose hash of `app_compose`, with fixed
 * random MRTD and RTMR0-2 per deployment. A fresh quote is signed for every report.
 */
export async function createAciTdxEvidence(): Promise<AciTdxEvidence> {
  const pki = await createTdxTestPki();
  const [mrtd, rtmr0, rtmr1, rtmr2] = [randomBytes(48), randomBytes(48), randomBytes(48), randomBytes(48)];
  const appCompose = composeOf('tresor-sim');
  const log = mintDstackEventLog(appCompose);
  const otherCompose = composeOf('tresor-sim-other');
  const otherLog = mintDstackEventLog(otherCompose);
  return {
    pki,
    intelRoot: pki.root,
    mrtd: toHex(mrtd),
    rtmrs: { rtmr0: toHex(rtmr0), rtmr1: toHex(rtmr1), rtmr2: toHex(rtmr2) },
    appCompose,
    composeHash: log.composeHash,
    evidence(reportData, f) {
      const [served, compose] = f.otherComposeHash ? [otherLog, otherCompose] : [log, appCompose];
      const quote = mintTdxQuote(pki, {
        reportData,
        mrtd: f.wrongMeasurement ? randomBytes(48) : mrtd,
        rtmr0,
        rtmr1: f.wrongRtmrs ? randomBytes(48) : rtmr1,
        rtmr2,
        rtmr3: f.rtmr3Mismatch ? randomBytes(48) : served.rtmr3,
        debug: f.debugTd === true,
        breakQuoteSignature: f.badQuoteSignature === true,
        breakQeBinding: f.badQeBinding === true,
      });
      const evidence = {
        quote: toHex(quote),
        ...(f.noEventLog ? {} : { event_log: served.events, app_compose: f.appComposeMismatch ? `${compose} ` : compose }),
      };
      return evidence as JsonObject;
    },
  };
}
