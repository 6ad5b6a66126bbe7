import { createOpenAI } from '@ai-sdk/openai';
import { ChatOpenAI } from '@langchain/openai';
import { generateText } from 'ai';
import OpenAI from 'openai';
import { describe, expect, test } from 'vitest';
import { AttestationError, MeasurementNotAllowedError } from '../../src/errors/attestation.js';
import { attestationErrorOf } from '../../src/index.js';
import type { VerdictSummary } from '../../src/receipts/verdicts.js';
import { countingFetch, librarySimFixture, type LibrarySim } from '../helpers/library.js';

/** The Vercel AI SDK and LangChain driven through attestedFetch against the simulator (attestation enforced). */
let s: LibrarySim;
const { open } = librarySimFixture((started) => (s = started));
/** The next receipt verdict the transport reports. */
const nextVerdict = () => {
  let settle: (v: VerdictSummary) => void = () => undefined;
  const verdict = new Promise<VerdictSummary>((r) => (settle = r));
  return { verdict, onVerdict: (v: VerdictSummary) => settle(v) };
};

describe('the Vercel AI SDK', () => {
  test('an attestation fault is rethrown as the MeasurementNotAllowedError itself, not retried, before any application byte', async () => {
    s.evidence.faults.wrongMeasurement = true;
    const before = s.traffic();
    const counted = countingFetch(s, open());
    const tresor = createOpenAI({ baseURL: s.baseURL, apiKey: 'tr-test', fetch: counted.fetch });
    const err = await generateText({ model: tresor.chat('gpt-oss-120b'), prompt: 'secret' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MeasurementNotAllowedError);
    expect(err).toBe(counted.rejections[0]);
    expect(err).toMatchObject({ name: 'MeasurementNotAllowedError', code: 'ERR_ATTEST_MEASUREMENT_NOT_ALLOWED' });
    expect(counted.calls).toHaveLength(1);
    const after = s.traffic();
    expect(after.attestations - before.attestations).toBe(1);
    expect(after.application).toBe(before.application);
  });
});

describe('LangChain ChatOpenAI with configuration.fetch', () => {
  test('answered through the attested transport, its receipt verified', async () => {
    const { verdict, onVerdict } = nextVerdict();
    const model = new ChatOpenAI({ model: 'gpt-oss-120b', apiKey: 'tr-test', configuration: { baseURL: s.baseURL, fetch: open({ receipts: 'audit', onVerdict }) } });
    const reply = await model.invoke('Hello from LangChain!');
    expect(reply.content).toContain('Hello from LangChain!');
    expect(await verdict).toMatchObject({ status: 'done', verdict: 'verified' });
  });

  test('an attestation fault: the typed error is the cause of what LangChain throws; its retry finds the circuit open; no application byte', async () => {
    s.evidence.faults.wrongMeasurement = true;
    const before = s.traffic();
    const counted = countingFetch(s, open());
    // LangChain retries with backoff from 1 s (6 times by default) and sets the openai client's own maxRetries to 0.
    const model = new ChatOpenAI({ model: 'gpt-oss-120b', apiKey: 'tr-test', maxRetries: 1, configuration: { baseURL: s.baseURL, fetch: counted.fetch } });
    const err = await model.invoke('secret').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.APIConnectionError);
    expect(err).not.toBeInstanceOf(AttestationError);
    const typed = attestationErrorOf(err);
    expect(typed).toBeInstanceOf(MeasurementNotAllowedError);
    expect(typed).toBe((err as Error).cause);
    expect(typed).toBe(counted.rejections.at(-1));
    expect(typed).toMatchObject({ code: 'ERR_ATTEST_MEASUREMENT_NOT_ALLOWED', phase: 'verify' });
    const after = s.traffic();
    expect(counted.calls).toHaveLength(2);
    expect(counted.calls[1]).toEqual(after);
    expect(after.attestations - before.attestations).toBe(1);
    expect(after.application).toBe(before.application);
  });
});
