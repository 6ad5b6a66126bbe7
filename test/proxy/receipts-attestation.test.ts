// The attestation summary a receipt job and its audit record name: one frozen object per pin, whose
// JSON text the journal splices into every job line (receipts/journal.ts jobLine). The summary's
// bytes are what auditAttestation makes for that pin, as before it was shared.
import type { TLSSocket } from 'node:tls';
import { expect, test } from 'vitest';
import { auditAttestation, type AttestedIdentity } from '../../src/attestation/identity.js';
import type { AttestationManager, PinLapse } from '../../src/attestation/manager.js';
import { exchangeAttestation } from '../../src/proxy/receipts.js';
import { frozenJson } from '../../src/util/frozen-json.js';

const pin = (spki: string, evidenceId?: string): AttestedIdentity =>
  ({ spkiSha256: spki, kind: 'snp', measurement: 'ab'.repeat(48), tag: 'cd'.repeat(32), bundleVersion: 17, freshness: 'nonce-bound', channel: 'bound', verifiedAt: 'v', expiresAt: 'e', summary: {}, ...(evidenceId ? { evidenceId } : {}) }) as AttestedIdentity;

function fakeManager(pins: Map<object, AttestedIdentity>, current: () => AttestedIdentity | undefined, lapses: PinLapse[] = []) {
  return { pinOf: (s: TLSSocket) => pins.get(s), lapsesSince: () => lapses, known: () => [...pins.values()], current, testRoots: true } as unknown as AttestationManager;
}

test('one frozen summary per pin, with its JSON text; the bytes auditAttestation made per exchange', () => {
  const a = pin('aa'.repeat(32), 'e1');
  const b = pin('bb'.repeat(32));
  const sa = {} as TLSSocket;
  const sb = {} as TLSSocket;
  let now: AttestedIdentity | undefined = a;
  const summary = exchangeAttestation(fakeManager(new Map([[sa, a], [sb, b]]), () => now), 'enforce');
  const first = summary(new Date(), sa) as Record<string, unknown>;
  expect(summary(new Date(), sa)).toBe(first);
  expect(summary(undefined, undefined)).toBe(first); // the pin in force
  expect(Object.isFrozen(first)).toBe(true);
  expect(JSON.stringify(first)).toBe(JSON.stringify(auditAttestation(a, { mode: 'enforce', testRoots: true })));
  expect(frozenJson(first)).toBe(JSON.stringify(first));
  const other = summary(new Date(), sb) as Record<string, unknown>;
  expect(other).not.toBe(first);
  expect(frozenJson(other)).toBe(JSON.stringify(auditAttestation(b, { mode: 'enforce', testRoots: true })));
  now = undefined;
  const none = summary(undefined, undefined) as Record<string, unknown>;
  expect(frozenJson(none)).toBe(JSON.stringify({ mode: 'enforce', test_roots: true }));
});

test('a lapse in flight: a summary of its own (the old form), never a shared pin text', () => {
  const a = pin('aa'.repeat(32), 'e1');
  const s = {} as TLSSocket;
  const lapse = { spkiSha256: a.spkiSha256, at: 't', code: 'ERR_X', message: 'm' };
  const summary = exchangeAttestation(fakeManager(new Map([[s, a]]), () => a, [lapse]), 'enforce');
  const got = summary(new Date(), s) as Record<string, unknown>;
  const base = auditAttestation(a, { mode: 'enforce', testRoots: true });
  expect(JSON.stringify(got)).toBe(JSON.stringify({ ...base, tls_spki_sha256: lapse.spkiSha256, pin_lapsed_in_flight: { at: 't', code: 'ERR_X' } }));
  expect(frozenJson(got)).toBeUndefined();
  expect(summary(new Date(), s)).not.toBe(got);
});
