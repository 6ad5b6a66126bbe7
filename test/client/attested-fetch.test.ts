import OpenAI from 'openai';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { attestedFetch, type AttestedFetch } from '../../src/client/fetch.js';
import { MeasurementNotAllowedError } from '../../src/errors/attestation.js';
import { startLibrarySim, type LibrarySim } from '../helpers/library.js';

let s: LibrarySim;
const opened: AttestedFetch[] = [];
beforeAll(async () => {
  s = await startLibrarySim();
});
afterEach(async () => {
  for (const f of opened.splice(0)) await f.close();
  Object.assign(s.evidence.faults, { wrongMeasurement: false });
});
afterAll(() => s.close());

const open = (extra = {}) => {
  const f = attestedFetch(s.options(extra));
  opened.push(f);
  return f;
};

describe('attestedFetch with the official OpenAI SDK', () => {
  test('a completion through the attested transport, its receipt verified in-process', async () => {
    const fetch = open({ receipts: 'audit' });
    const client = new OpenAI({ baseURL: s.baseURL, apiKey: 'tr-test', fetch });
    const { data, response } = await client.chat.completions.create({ model: 'gpt-oss-120b', messages: [{ role: 'user', content: 'Hello!' }] }).withResponse();
    expect(data.choices[0]?.message.content).toContain('Hello!');
    const v = await fetch.verdictFor(response);
    expect(v).toMatchObject({ status: 'done', verdict: 'verified' });
  });

  test('an attestation failure reaches the app as MeasurementNotAllowedError before any application byte', async () => {
    s.evidence.faults.wrongMeasurement = true;
    const before = s.sim.requestCounts.get('/v1/chat/completions') ?? 0;
    const fetch = open();
    const client = new OpenAI({ baseURL: s.baseURL, apiKey: 'tr-test', fetch });
    const err = await client.chat.completions.create({ model: 'gpt-oss-120b', messages: [{ role: 'user', content: 'x' }] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.APIConnectionError);
    expect((err as Error).cause).toBeInstanceOf(MeasurementNotAllowedError);
    expect(s.sim.requestCounts.get('/v1/chat/completions') ?? 0).toBe(before);
  });
});
