import { describe, expect, test } from 'vitest';
import { asksForStream } from '../../src/proxy/upstream.js';

describe('asksForStream: which requests take the HTTP/2 pool under pool.http2 "streams"', () => {
  test.each([
    ['{"model":"m","stream":true}', true],
    ['{"stream" : \n\ttrue, "model":"m"}', true],
    ['{"model":"m","stream":false}', false],
    ['{"model":"m"}', false],
    ['{"messages":[{"role":"user","content":"\\"stream\\": true"}]}', false],
    ['{"messages":[{"role":"user","content":"stream"}],"stream":true}', true],
    ['{"content":"stream","x":"\\"stream\\":true"}', false],
    ['{"stream":"true"}', false],
    ['{"stream":tru', false],
    ['', false],
  ])('%s → %s', (body, expected) => {
    expect(asksForStream(Buffer.from(body))).toBe(expected);
    expect(asksForStream(body)).toBe(expected);
    expect(asksForStream(new Uint8Array(Buffer.from(body)))).toBe(expected);
  });

  test('a body that is not whole (a stream, or none) never does', () => {
    expect(asksForStream(undefined)).toBe(false);
    expect(asksForStream(null)).toBe(false);
    expect(asksForStream((async function* () {})())).toBe(false);
  });

  test('agrees with JSON.parse on the top-level member of generated chat bodies', () => {
    for (let i = 0; i < 500; i++) {
      const body: Record<string, unknown> = { model: `m${i}`, messages: [{ role: 'user', content: i % 3 === 0 ? '"stream": true' : 'hi' }] };
      if (i % 2 === 0) body.stream = i % 4 === 0;
      if (i % 5 === 0) body.stream_options = { include_usage: true };
      const text = i % 7 === 0 ? JSON.stringify(body, null, 2) : JSON.stringify(body);
      expect(asksForStream(Buffer.from(text))).toBe((JSON.parse(text) as { stream?: boolean }).stream === true);
    }
  });
});
