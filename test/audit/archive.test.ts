import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, test } from 'vitest';
import { archiveLine, jwsSha256 } from '../../src/audit/archive.js';

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

describe('jwsSha256: the hex SHA-256 of the text\'s UTF-8 bytes', () => {
  test('as a Hash over the UTF-8 encoding computes it, for ASCII, Latin-1, astral and lone surrogates', () => {
    const texts = ['', 'abc', `${randomBytes(6000).toString('base64url')}.x`, 'caf\u00e9', '\u00ff\u0100', '\u{1F600}', '\ud800', 'x\udfffy', '\u0000\n'];
    for (const t of texts) expect(jwsSha256(t), JSON.stringify(t)).toBe(createHash('sha256').update(Buffer.from(t, 'utf8')).digest('hex'));
  });
});
