import { MalformedError } from '../errors/index.js';
import { fromBase64Url } from './bytes.js';
import { deepFreeze, knownLastMember, topLevelMemberSpan, type JsonValueMemo } from './json-member.js';

/** A compact JWS split into its parts; nothing verified. */
export interface ParsedJws {
  readonly header: Readonly<Record<string, unknown>>;
  readonly payload: Readonly<Record<string, unknown>>;
  /** `base64url(header) . base64url(payload)`: the signing input, exactly as received. */
  readonly signingInput: string;
  readonly signature: Uint8Array;
  /** The payload's JSON text exactly as signed (members can be read from it as received: util/json-member.ts). */
  readonly payloadText: string;
  /** With `reuse`: that top-level payload member's exact text, when present and cut out (util/json-member.ts). */
  readonly member?: { readonly name: string; readonly text: string };
  /**
   * The JWS text exactly as given, when it is nothing but the three segments this parse proved
   * base64url (ASCII letters, digits, `-`, `_`: fromBase64Url) and their two dots, nothing trimmed:
   * JSON writes it as it is between quotes (audit/archive.ts archiveLine then skips its own check).
   */
  readonly verbatim: string | undefined;
}

/**
 * The last header parsed, by its exact base64url text: a signer's protected header (alg, kid)
 * repeats byte for byte on every JWS until its key rotates. Decoding and parsing it again cost
 * about 3 µs per receipt (a 40-byte decode copied out of Node's pool, a string, JSON.parse). The
 * value is deep-frozen: every JWS with that header shares it.
 */
export interface LastHeader {
  text?: string;
  value?: Readonly<Record<string, unknown>>;
}

/** A top-level payload member whose value often repeats byte for byte: parsed once per distinct text. */
export interface ReuseMember {
  name: string;
  memo: JsonValueMemo;
}

function decodeJsonSegment(seg: string, what: string, code: string, reuse?: ReuseMember): { value: Record<string, unknown>; text: string; memberText?: string } {
  const bytes = fromBase64Url(seg, { field: `JWS ${what}`, code });
  const held = reuse && heldMember(bytes, reuse);
  const text = held ? held.head + held.text + held.tail : utf8(bytes, 0, bytes.length);
  const member = held ?? (reuse && scannedMember(text, reuse));
  let value: unknown;
  try {
    value = (reuse && member?.value !== undefined && parseWithKnownMember(member, reuse.name)) || JSON.parse(text);
  } catch {
    throw new MalformedError(code, `JWS ${what} is not JSON`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new MalformedError(code, `expected the JWS ${what} to be a JSON object`);
  }
  if (reuse && member && member.value === undefined) {
    const parsed = (value as Record<string, unknown>)[reuse.name];
    if (typeof parsed === 'object' && parsed !== null) reuse.memo.set(member.text, parsed);
  }
  return { value: value as Record<string, unknown>, text, ...(member ? { memberText: member.text } : {}) };
}

/** The reused member's text, the document's text before and after it, and the memo's value (undefined: new text). */
interface MemberAt {
  head: string;
  text: string;
  tail: string;
  value?: unknown;
}

const utf8 = (b: Uint8Array, start: number, end: number) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('utf8', start, end);

/**
 * A held text ending the document, found by its bytes (util/json-member.ts knownLastMember: valid
 * only once the rest parses, as parseWithKnownMember checks): only the bytes around it are decoded.
 */
function heldMember(bytes: Uint8Array, reuse: ReuseMember): MemberAt | undefined {
  const k = knownLastMember(bytes, reuse.name, reuse.memo);
  return k && { head: utf8(bytes, 0, k.start), text: k.text, tail: utf8(bytes, k.end, bytes.length), value: k.value };
}

/** Any other shape: the member found by the scanner, and its text looked up once. */
function scannedMember(text: string, reuse: ReuseMember): MemberAt | undefined {
  const span = topLevelMemberSpan(text, reuse.name);
  if (!span) return undefined;
  const memberText = text.slice(span[0], span[1]);
  return { head: text.slice(0, span[0]), text: memberText, tail: text.slice(span[1]), value: reuse.memo.get(memberText) };
}

/**
 * The document parsed without parsing the member again, when its exact text was parsed before: the
 * rest with `null` in its place, then the memo's value put there. The same acceptance as parsing the
 * whole text (the memo holds only text JSON.parse accepted, and a value put where a value was
 * parses in every valid document); undefined (parse it all) when the rest does not parse.
 */
function parseWithKnownMember(member: MemberAt, name: string): Record<string, unknown> | undefined {
  let rest: unknown;
  try {
    rest = JSON.parse(`${member.head}null${member.tail}`);
  } catch {
    return undefined;
  }
  if (typeof rest !== 'object' || rest === null || Array.isArray(rest)) return undefined;
  (rest as Record<string, unknown>)[name] = member.value;
  return rest as Record<string, unknown>;
}

/**
 * The header: the memo's value when the segment is the text it was parsed from (the same text
 * decodes and parses to the same value, so it is accepted as before), else decoded and parsed.
 */
function headerOf(seg: string, code: string, memo: LastHeader | undefined): Readonly<Record<string, unknown>> {
  if (memo !== undefined && memo.text === seg) return memo.value as Readonly<Record<string, unknown>>;
  const value = decodeJsonSegment(seg, 'header', code).value;
  if (memo !== undefined) {
    memo.value = deepFreeze(value) as Readonly<Record<string, unknown>>;
    memo.text = seg;
  }
  return value;
}

/** Parse a compact JWS (three base64url segments, JSON header and payload), bounded. No crypto. */
export function parseJws(text: string, opts: { code: string; maxBytes: number; what: string; reuse?: ReuseMember; header?: LastHeader }): ParsedJws {
  if (text.length > opts.maxBytes) throw new MalformedError(opts.code, `${opts.what} exceeds ${opts.maxBytes} bytes`);
  const jws = text.trim();
  const parts = jws.split('.');
  if (parts.length !== 3) throw new MalformedError(opts.code, `expected ${opts.what} as a compact JWS with 3 segments, got ${parts.length}`);
  const [h, p, s] = parts as [string, string, string];
  const header = headerOf(h, opts.code, opts.header);
  const payload = decodeJsonSegment(p, 'payload', opts.code, opts.reuse);
  const signature = fromBase64Url(s, { field: 'JWS signature', code: opts.code });
  // The signing input is the JWS text's own prefix (a slice shares its characters): building it as
  // `${h}.${p}` made a second ~8 KB string, copied once more when it was turned into bytes.
  return { header, payload: payload.value, signingInput: jws.slice(0, h.length + 1 + p.length), signature, payloadText: payload.text, verbatim: jws.length === text.length ? text : undefined, ...(opts.reuse && payload.memberText !== undefined ? { member: { name: opts.reuse.name, text: payload.memberText } } : {}) };
}
