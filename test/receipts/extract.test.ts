import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { createTresorExtractor, MAX_SSE_LINE, type ReceiptIdField } from '../../src/receipts/extract.js';

const tresor = { receipt_id: '7c9e6679-7425-40de-944b-e07fc1f90ae7', requested_route: 'auto/auto/gpt-oss-120b', routed_model: 'eu/tresor/gpt-oss-120b', failover: false };
const sse = Buffer.from(
  [
    { choices: [{ delta: { role: 'assistant' }, finish_reason: null }] },
    { choices: [{ delta: { content: 'hé "tresor" in text' }, finish_reason: null }] },
    { choices: [{ delta: {}, finish_reason: 'stop' }], tresor },
    { choices: [], usage: { total_tokens: 3 } },
  ]
    .map((e) => `data: ${JSON.stringify(e)}\n\n`)
    .join('') + 'data: [DONE]\n\n',
);
const json = Buffer.from(JSON.stringify({ id: 'x', choices: [{ message: { content: 'hi' } }], tresor }));

/** Feed `bytes` to an extractor for `field`, cut at the given offsets. */
function run(kind: 'json' | 'sse', bytes: Buffer, cuts: number[], field: ReceiptIdField = 'tresor') {
  const x = createTresorExtractor(kind, field);
  let prev = 0;
  for (const c of [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b)) {
    x.push(bytes.subarray(prev, c));
    prev = c;
  }
  x.push(bytes.subarray(prev));
  return x.end();
}

describe('tresor block extraction on the flowing bytes', () => {
  test('SSE finish chunk and JSON body', () => {
    expect(run('sse', sse, [])).toEqual({ tresor });
    expect(run('json', json, [])).toEqual({ tresor });
  });

  test('any chunk boundaries (including inside multi-byte UTF-8) give the same result', () => {
    fc.assert(
      fc.property(fc.array(fc.nat(), { maxLength: 40 }), (cuts) => {
        expect(run('sse', sse, cuts)).toEqual({ tresor });
        expect(run('json', json, cuts)).toEqual({ tresor });
      }),
      { numRuns: 500 },
    );
  });

  test('no tresor block, CRLF lines, an over-long line, a non-JSON body', () => {
    expect(run('sse', Buffer.from('data: {"choices":[]}\n\ndata: [DONE]\n\n'), [])).toEqual({});
    expect(run('sse', Buffer.from(sse.toString().replace(/\n/g, '\r\n')), [7, 300])).toEqual({ tresor });
    const long = Buffer.concat([Buffer.from(`data: {"tresor":{"receipt_id":"evil"},"pad":"`), Buffer.alloc(MAX_SSE_LINE, 0x61), Buffer.from('"}\n\n'), sse]);
    expect(run('sse', long, [100, 5000, MAX_SSE_LINE])).toEqual({ tresor });
    expect(run('json', Buffer.from('{"tresor": oops'), [])).toEqual({ error: 'response body is not JSON' });
    expect(run('json', Buffer.from('{"id":"no block"}'), [3])).toEqual({});
  });
});

describe('SSE events whose data spans several data: lines (valid SSE, joined by newlines)', () => {
  // The finish event pretty-printed, one `data:` line per JSON line, among comments, `event:` and
  // `id:` fields; the `"tresor"` key sits on a later line than the event's first.
  const split = (e: unknown, eol: string) =>
    JSON.stringify(e, null, 2)
      .split('\n')
      .map((l, i) => (i % 2 === 0 ? `data: ${l}` : `data:${l}`))
      .join(eol);
  const events = (eol: string) =>
    Buffer.from(
      [
        `: keep-alive${eol}event: message${eol}${split({ choices: [{ delta: { content: 'hi' }, finish_reason: null }] }, eol)}${eol}${eol}`,
        `id: 7${eol}${split({ choices: [{ delta: {}, finish_reason: 'stop' }], tresor }, eol)}${eol}${eol}`,
        `data: [DONE]${eol}${eol}`,
      ].join(''),
    );

  test('the receipt id is found at any chunk boundaries, LF or CRLF', () => {
    for (const eol of ['\n', '\r\n']) {
      const bytes = events(eol);
      expect(run('sse', bytes, [])).toEqual({ tresor });
      fc.assert(
        fc.property(fc.array(fc.nat(), { maxLength: 30 }), (cuts) => {
          expect(run('sse', bytes, cuts)).toEqual({ tresor });
        }),
        { numRuns: 300 },
      );
    }
  });

  test('the top-level id (NEAR) split over lines, and an over-long multi-line event skipped', () => {
    const near = Buffer.from(`data: {"id": "chat-1",\ndata:  "model": "m",\ndata: "choices": [{"finish_reason": "stop"}]}\n\n`);
    expect(run('sse', near, [9, 30], 'id')).toEqual({ tresor: { receipt_id: 'chat-1', routed_model: 'm' } });
    const pad = `data: "${'a'.repeat(MAX_SSE_LINE / 4)}",\n`;
    const long = Buffer.from(`data: {"tresor":{"receipt_id":"evil"},\ndata: "pad": [\n${pad.repeat(5)}data: "b"]}\n\n`);
    expect(run('sse', Buffer.concat([long, sse]), [50, 4096])).toEqual({ tresor });
  });
});

describe('top-level request_id extraction (Pinaivu, seed 004)', () => {
  const id = '0190a5f4-3b7c-7d2e-9a41-5f6e7d8c9b0a';
  const pinSse = Buffer.from(
    [
      { model: 'm1', choices: [{ delta: { content: 'the text says "request_id": "fake"' }, finish_reason: null }] },
      { model: 'm1', choices: [{ delta: {}, finish_reason: 'stop' }], request_id: id },
    ]
      .map((e) => `data: ${JSON.stringify(e)}\n\n`)
      .join('') + 'data: [DONE]\n\n',
  );
  const pinJson = Buffer.from(JSON.stringify({ id: 'chatcmpl-1', model: 'm1', choices: [], request_id: id }));
  const runField = (kind: 'json' | 'sse', bytes: Buffer, cuts: number[]) => run(kind, bytes, cuts, 'request_id');

  test('JSON body and SSE finish chunk, at any chunk boundaries; the tresor extractor ignores it', () => {
    fc.assert(
      fc.property(fc.array(fc.nat(), { maxLength: 8 }), (cuts) => {
        expect(runField('json', pinJson, cuts)).toEqual({ tresor: { receipt_id: id, routed_model: 'm1' } });
        expect(runField('sse', pinSse, cuts)).toEqual({ tresor: { receipt_id: id, routed_model: 'm1' } });
      }),
    );
    expect(run('json', pinJson, [])).toEqual({});
    expect(runField('json', json, [])).toEqual({});
    expect(runField('json', Buffer.from('{"request_id": 7}'), [])).toEqual({});
  });
});

describe('top-level id extraction (NEAR: the chat id names the signature)', () => {
  const sse = Buffer.from(
    [
      { id: 'chatcmpl-7', model: 'm2', choices: [{ delta: { content: 'a tool said "id": "fake"', tool_calls: [{ id: 'call_1' }] }, finish_reason: null }] },
      { id: 'chatcmpl-7', model: 'm2', choices: [{ delta: {}, finish_reason: 'stop' }] },
    ]
      .map((e) => `data: ${JSON.stringify(e)}\n\n`)
      .join('') + 'data: [DONE]\n\n',
  );
  const body = Buffer.from(JSON.stringify({ id: 'chatcmpl-7', model: 'm2', choices: [{ message: { tool_calls: [{ id: 'call_1' }] } }] }));
  const runId = (kind: 'json' | 'sse', bytes: Buffer, cuts: number[]) => run(kind, bytes, cuts, 'id');
  test('the completion id and model, never a nested id, at any chunk boundaries', () => {
    fc.assert(
      fc.property(fc.array(fc.nat(), { maxLength: 8 }), (cuts) => {
        expect(runId('json', body, cuts)).toEqual({ tresor: { receipt_id: 'chatcmpl-7', routed_model: 'm2' } });
        expect(runId('sse', sse, cuts)).toEqual({ tresor: { receipt_id: 'chatcmpl-7', routed_model: 'm2' } });
      }),
    );
    expect(runId('json', Buffer.from('{"id": 7, "choices": [{"id": "x"}]}'), [])).toEqual({});
  });
});

describe('whole-event chunks (the fast paths) find what the byte-by-byte splitter finds', () => {
  const events = (list: unknown[], eol = '\n', sep = ' ') => list.map((e) => `data:${sep}${JSON.stringify(e)}${eol}${eol}`).join('') + `data: [DONE]${eol}${eol}`;
  const finish = { choices: [{ delta: {}, finish_reason: 'stop' }], tresor };
  const cases: { name: string; bytes: Buffer; field: ReceiptIdField }[] = [
    { name: 'LF', bytes: Buffer.from(events([{ choices: [] }, { choices: [{ delta: { content: 'a "tresor" b' } }] }, finish])), field: 'tresor' },
    { name: 'CRLF', bytes: Buffer.from(events([{ choices: [] }, finish], '\r\n')), field: 'tresor' },
    { name: '`data:` without a space', bytes: Buffer.from(events([{ choices: [] }, finish], '\n', '')), field: 'tresor' },
    { name: 'a line ending CR LF, the event LF', bytes: Buffer.from(`data: ${JSON.stringify(finish)}\r\n\ndata: [DONE]\n\n`), field: 'tresor' },
    { name: 'event and id lines before the finish data', bytes: Buffer.from(`data: {"choices":[]}\n\nevent: message\nid: 3\ndata: ${JSON.stringify(finish)}\n\n`), field: 'tresor' },
    { name: 'two events in one chunk, the block in the second', bytes: Buffer.from(`data: {"choices":[]}\n\n: "tresor" in a comment\n\ndata: ${JSON.stringify(finish)}\n\n`), field: 'tresor' },
    { name: 'request_id', bytes: Buffer.from(events([{ model: 'm', choices: [] }, { model: 'm', choices: [{ finish_reason: 'stop' }], request_id: 'p-1' }])), field: 'request_id' },
    { name: 'id', bytes: Buffer.from(events([{ id: 'c-1', model: 'm', choices: [] }, { id: 'c-1', model: 'm', choices: [{ finish_reason: 'stop' }] }])), field: 'id' },
  ];
  /** The stream cut after each blank line: every chunk a whole event, as a router's writes arrive. */
  const wholeEvents = (b: Buffer) => {
    const cuts: number[] = [];
    for (let i = b.indexOf('\n\n'); i >= 0; i = b.indexOf('\n\n', i + 2)) cuts.push(i + 2);
    return cuts.filter((c) => c < b.length);
  };
  const oneByteAtATime = (b: Buffer) => Array.from({ length: b.length }, (_, i) => i + 1);

  test.each(cases)('$name: whole events, each cut once at every offset, and every two-chunk split', ({ bytes, field }) => {
    const reference = run('sse', bytes, oneByteAtATime(bytes), field);
    expect(reference.tresor?.receipt_id).toBeDefined();
    expect(run('sse', bytes, wholeEvents(bytes), field)).toEqual(reference);
    for (let k = 0; k <= bytes.length; k++) {
      expect(run('sse', bytes, [k], field)).toEqual(reference);
      expect(run('sse', bytes, [...wholeEvents(bytes), k], field)).toEqual(reference);
    }
  });

  test('a whole single-line event that is over-long, or a comment, is skipped as before', () => {
    const long = Buffer.from(`data: {"tresor":{"receipt_id":"evil"},"pad":"${'a'.repeat(MAX_SSE_LINE)}"}\n\n`);
    expect(run('sse', Buffer.concat([long, sse]), [long.length])).toEqual({ tresor });
    expect(run('sse', Buffer.from(`: {"tresor":{"receipt_id":"evil"}}\n\n`), [])).toEqual({});
  });

  test('per chunk one native search, not starting at the JSON quote; the single-line finish event read without the line splitter (3 searches, 5 before)', () => {
    const bytes = cases[0]?.bytes as Buffer;
    const cuts = wholeEvents(bytes);
    const searched: Buffer[] = [];
    const indexOf = Buffer.prototype.indexOf;
    Buffer.prototype.indexOf = function (this: Buffer, ...a: Parameters<Buffer['indexOf']>) {
      searched.push(Buffer.isBuffer(a[0]) ? a[0] : Buffer.from(typeof a[0] === 'number' ? [a[0]] : String(a[0])));
      return indexOf.apply(this, a);
    } as Buffer['indexOf'];
    try {
      expect(run('sse', bytes, cuts)).toEqual({ tresor });
    } finally {
      Buffer.prototype.indexOf = indexOf;
    }
    const chunks = cuts.length + 1;
    expect(searched.length).toBe(chunks + 2);
    expect(searched.filter((s) => s[0] === 0x22)).toEqual([Buffer.from('"tresor"')]); // the finish event's own check
  });
});
