import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, test } from 'vitest';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { archiveLine, jwsSha256, ReceiptArchive } from '../../src/audit/archive.js';

const joined = (l: string | string[]) => (typeof l === 'string' ? l : l.join(''));

describe('archiveLine: the archive line byte for byte as JSON.stringify({ sha256, jws }) writes it', () => {
  test('a JWS goes in as its own part; anything JSON would escape takes the whole-line path', () => {
    const jws = `${randomBytes(30).toString('base64url')}.${randomBytes(6000).toString('base64url')}.${randomBytes(64).toString('base64url')}`;
    const line = archiveLine(jwsSha256(jws), jws);
    expect(Array.isArray(line) && line[1]).toBe(jws);
    const texts = [jws, '', ' ', '"', '\\', 'a"b', 'a\\b', '\n', '\u0000', '\u001f', '\u007f', 'caf\u00e9', '\u{1F600}', '\ud800', 'x\udfffy', ` ${jws}\n`, '{"aci":"document"}', "'<>&/"];
    for (let i = 0; i < 200; i++) texts.push(String.fromCharCode(...Array.from({ length: 8 }, () => Math.floor(Math.random() * 0x90))));
    for (const t of texts) expect(joined(archiveLine(jwsSha256(t), t)), JSON.stringify(t)).toBe(JSON.stringify({ sha256: jwsSha256(t), jws: t }));
  });
});

describe('archiveLine with the parse\'s proof (util/jws.ts ParsedJws.verbatim)', () => {
  const jws = `${randomBytes(30).toString('base64url')}.${randomBytes(600).toString('base64url')}.${randomBytes(64).toString('base64url')}`;
  const hostile = [`${jws}\n`, ` ${jws}`, `${jws}"`, `${jws}\\`, `${jws}\u00e9`, `a"b`, 'a\\b', '\u0000', '\ud800', 'caf\u00e9'];

  test('the proven text goes in as its own part; a proof of another text is no proof: the text is checked and escaped', () => {
    const line = archiveLine(jwsSha256(jws), jws, jws);
    expect(Array.isArray(line) && line[1]).toBe(jws);
    for (const t of hostile) {
      for (const proof of [jws, undefined, t.trim() === t ? undefined : t.trim()]) {
        expect(joined(archiveLine(jwsSha256(t), t, proof)), JSON.stringify(t)).toBe(JSON.stringify({ sha256: jwsSha256(t), jws: t }));
      }
    }
  });

  test('through ReceiptArchive.put: every line parses back to the text archived', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'archive-proof-'));
    try {
      const a = new ReceiptArchive(dir);
      const at = new Date('2026-12-06T12:00:00Z');
      await a.put(jws, at, undefined, { verbatim: jws });
      for (const t of hostile) await a.put(t, at, undefined, { verbatim: jws });
      await a.close();
      const lines = (await readFile(join(dir, 'receipts-20261206.jsonl'), 'utf8')).split('\n').filter(Boolean);
      expect(lines).toEqual([jws, ...hostile].map((t) => JSON.stringify({ sha256: jwsSha256(t), jws: t })));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('jwsSha256: the hex SHA-256 of the text\'s UTF-8 bytes', () => {
  test('as a Hash over the UTF-8 encoding computes it, for ASCII, Latin-1, astral and lone surrogates', () => {
    const texts = ['', 'abc', `${randomBytes(6000).toString('base64url')}.x`, 'caf\u00e9', '\u00ff\u0100', '\u{1F600}', '\ud800', 'x\udfffy', '\u0000\n'];
    for (const t of texts) expect(jwsSha256(t), JSON.stringify(t)).toBe(createHash('sha256').update(Buffer.from(t, 'utf8')).digest('hex'));
  });
});
