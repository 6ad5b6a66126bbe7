import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { DoneHolder } from '../../src/proxy/sse-hold.js';

/** Split `bytes` at the given cut points (chunk boundaries can fall anywhere). */
function chunks(bytes: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const p of [...points, bytes.length]) {
    out.push(bytes.subarray(prev, p));
    prev = p;
  }
  return out;
}

function run(stream: Buffer, cuts: number[]) {
  const h = new DoneHolder();
  const passed = Buffer.concat(chunks(stream, cuts).map((c) => Buffer.from(h.push(c))));
  return { passed, held: h.release(), sawDone: h.sawDone };
}

const event = fc.string({ maxLength: 40 }).map((s) => `data: ${JSON.stringify({ t: s })}\n\n`);

describe('DoneHolder (strict mode streams)', () => {
  test('everything before the final data: [DONE] passes; the marker and what follows are held, at any chunking', () => {
    fc.assert(
      fc.property(fc.array(event, { maxLength: 8 }), fc.constantFrom('data: [DONE]\n\n', 'data:[DONE]\n\n', 'data: [DONE]\r\n\r\n'), fc.array(fc.nat(), { maxLength: 12 }), (events, done, cuts) => {
        const body = Buffer.from(events.join(''));
        const r = run(Buffer.concat([body, Buffer.from(done)]), cuts);
        expect(r.passed.equals(body)).toBe(true);
        expect(r.held.toString()).toBe(done);
        expect(r.sawDone).toBe(true);
      }),
    );
  });

  test('a stream without the marker passes whole (a partial prefix is only ever held until it is disproved or the end)', () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(event, fc.constant('data: [DON\n\n'), fc.constant('data: [DONE-ish]\n'), fc.constant('x data: [DONE]\n')), { maxLength: 8 }), fc.array(fc.nat(), { maxLength: 12 }), (events, cuts) => {
        const body = Buffer.from(events.join(''));
        const r = run(body, cuts);
        expect(Buffer.concat([r.passed, r.held]).equals(body)).toBe(true);
        expect(r.sawDone).toBe(false);
        // Only an unterminated last line can be held.
        expect(r.held.includes(0x0a)).toBe(false);
      }),
    );
  });

  test('a chunk of whole events without the marker goes on as it is: no copy, no new view per chunk', () => {
    const h = new DoneHolder();
    const chunk = Buffer.from('data: {"choices":[{"delta":{"content":"hi"}}]}\n\n');
    expect(h.push(chunk)).toBe(chunk);
    expect(h.push(chunk)).toBe(chunk);
    // A partial last line that may become the marker is still held, and the marker still found after it.
    expect(h.push(Buffer.from('data: [DO')).length).toBe(0);
    expect(h.push(Buffer.from('NE]\n\n')).length).toBe(0);
    expect(h.sawDone).toBe(true);
    expect(h.release().toString()).toBe('data: [DONE]\n\n');
  });

  test('a marker that is not at a line start is data, not the end', () => {
    const r = run(Buffer.from('data: {"a":"data: [DONE]"}\n\n'), []);
    expect(r.sawDone).toBe(false);
    expect(r.passed.toString()).toBe('data: {"a":"data: [DONE]"}\n\n');
  });

  test('one-line chunks: a line that begins like the marker is searched, one that does not goes on (the fast path)', () => {
    const h = new DoneHolder();
    const array = Buffer.from('data: [1,2]\n\n');
    expect(h.push(array)).toBe(array);
    const line = Buffer.from('data: {"a":1}\n');
    expect(h.push(line)).toBe(line);
    expect(h.push(Buffer.from('\n')).toString()).toBe('\n');
    expect(h.push(Buffer.from('data:[DONE]\n\n')).length).toBe(0);
    expect(h.sawDone).toBe(true);
    expect(h.release().toString()).toBe('data:[DONE]\n\n');
  });
});
