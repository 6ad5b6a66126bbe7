import { randomBytes } from 'node:crypto';
import { beforeAll, describe, expect, test } from 'vitest';
import { evaluateTdxPolicy, loadIntelSgxRoots, parseDstackEventLog, parseTdxQuote, verifyTdxQuote } from '../../../src/evidence/tdx/index.js';
import { createTdxTestPki, mintDstackEventLog, mintTdxQuote, type TdxTestPki } from '../../../src/sim/mint/tdx.js';
import { toHex } from '../../../src/util/bytes.js';
import { code } from '../../helpers/errors.js';

const NOW = new Date('2026-06-01T12:00:00Z');
let pki: TdxTestPki;
beforeAll(async () => {
  pki = await createTdxTestPki({ now: NOW });
});
const reportData = randomBytes(64);
const verify = (q: Uint8Array, roots = [pki.root]) => verifyTdxQuote(parseTdxQuote(q), { at: NOW, roots });

describe('simulated TDX quotes (Intel v4 layout, test PKI)', () => {
  test('parse and verify with the simulator root as the only anchor; fields as minted', () => {
    const mrtd = randomBytes(48);
    const q = verify(mintTdxQuote(pki, { reportData, mrtd }));
    expect(toHex(q.body.mrTd)).toBe(toHex(mrtd));
    expect(toHex(q.body.reportData)).toBe(toHex(reportData));
    expect(q.pckChain.map((c) => c.sha256)).toEqual([pki.pck.sha256, pki.pckCa.sha256, pki.root.sha256]);
    expect(q.tcbStatus).toBe('unknown');
  });

  test('never verifies against the real Intel root', () => {
    expect(code(() => verify(mintTdxQuote(pki, { reportData }), loadIntelSgxRoots()))).toBe('ERR_CHAIN_UNTRUSTED');
  });

  test('each broken DCAP check fails with its own code', () => {
    expect(code(() => verify(mintTdxQuote(pki, { reportData, breakQuoteSignature: true })))).toBe('ERR_TDX_QUOTE_SIGNATURE');
    expect(code(() => verify(mintTdxQuote(pki, { reportData, breakQeBinding: true })))).toBe('ERR_TDX_QE_BINDING');
  });

  test('the debug bit and the event log reach policy: RTMR3 replay and the compose-hash pin', () => {
    const log = mintDstackEventLog('services: {app: {image: sim}}');
    const q = verify(mintTdxQuote(pki, { reportData, rtmr3: log.rtmr3 }));
    const eventLog = parseDstackEventLog(log.events);
    expect(evaluateTdxPolicy(q, { eventLog, allowedComposeHashes: [log.composeHash] }).composeHash).toBe(log.composeHash);
    expect(code(() => evaluateTdxPolicy(q, { eventLog, allowedComposeHashes: ['00'.repeat(32)] }))).toBe('ERR_POLICY_TDX_COMPOSE_HASH');
    const stale = verify(mintTdxQuote(pki, { reportData }));
    expect(code(() => evaluateTdxPolicy(stale, { eventLog }))).toBe('ERR_POLICY_TDX_RTMR3_REPLAY');
    expect(code(() => evaluateTdxPolicy(verify(mintTdxQuote(pki, { reportData, debug: true })), {}))).toBe('ERR_POLICY_TDX_DEBUG');
    const two = mintDstackEventLog('x', { extraComposeEvent: true });
    expect(code(() => evaluateTdxPolicy(verify(mintTdxQuote(pki, { reportData, rtmr3: two.rtmr3 })), { eventLog: parseDstackEventLog(two.events) }))).toBe('ERR_POLICY_TDX_COMPOSE_EVENT');
  });
});
