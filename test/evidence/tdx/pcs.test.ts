import { describe, expect, test } from 'vitest';
import { crlAnswerHex, rawJsonMember } from '../../../src/evidence/tdx/pcs.js';

describe('PCS answers (Intel PCS API v4 shape)', () => {
  test('the signed member is cut out byte for byte: whitespace kept, a decoy key inside a string or a nested object ignored', () => {
    const inner = '{ "id": "TDX",\n  "note": "\\"tcbInfo\\": {}", "x": {"tcbInfo": {"no": 1}} }';
    const body = `{"other": {"tcbInfo": {"decoy": true}}, "tcbInfo" :  ${inner} , "signature": "ab"}`;
    expect(rawJsonMember(body, 'tcbInfo')).toBe(inner);
    expect(() => rawJsonMember('{"signature": "ab"}', 'tcbInfo')).toThrow(expect.objectContaining({ code: 'ERR_TDX_COLLATERAL_MALFORMED' }));
    expect(() => rawJsonMember('{"tcbInfo": "text"}', 'tcbInfo')).toThrow(expect.objectContaining({ code: 'ERR_TDX_COLLATERAL_MALFORMED' }));
  });
  test('a CRL answer as DER, hex text or PEM gives the same hex; anything else is malformed', () => {
    const der = Buffer.from('3003020101', 'hex');
    const pem = `-----BEGIN X509 CRL-----\n${der.toString('base64')}\n-----END X509 CRL-----\n`;
    for (const body of [der, Buffer.from('3003020101\n'), Buffer.from(pem)]) expect(crlAnswerHex(new Uint8Array(body), 'CRL')).toBe('3003020101');
    expect(() => crlAnswerHex(new Uint8Array(Buffer.from('<html>')), 'CRL')).toThrow(expect.objectContaining({ code: 'ERR_TDX_COLLATERAL_MALFORMED' }));
  });
});
