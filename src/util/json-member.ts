const isSpace = (c: number) => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;

/** Index just past the string that opens at `start` (a `"`), or -1 if it never closes. */
function endOfString(json: string, start: number): number {
  let i = start + 1;
  for (;;) {
    const q = json.indexOf('"', i);
    if (q < 0) return -1;
    let backslashes = 0;
    while (json.charCodeAt(q - 1 - backslashes) === 0x5c) backslashes++;
    i = q + 1;
    if (backslashes % 2 === 0) return i;
  }
}

/**
 * The exact text of the value of the top-level member `name` of a JSON object text, as it was
 * received (no re-serialisation): the last one if the name repeats, as JSON.parse keeps the last.
 * Undefined when the member is absent, when a top-level name is written with escapes (its raw text
 * could hide `name`), or when the text is not an object. For text JSON.parse has accepted: it
 * finds members, it does not validate JSON.
 */
export function topLevelMemberText(json: string, name: string): string | undefined {
  const span = topLevelMemberSpan(json, name);
  return span && json.slice(span[0], span[1]);
}

/** Where `topLevelMemberText` finds the member's value: [start, end) in `json`. */
export function topLevelMemberSpan(json: string, name: string): [number, number] | undefined {
  const wanted = JSON.stringify(name);
  let i = 0;
  while (isSpace(json.charCodeAt(i))) i++;
  if (json.charCodeAt(i) !== 0x7b) return undefined;
  let depth = 0;
  let key: string | undefined;
  let valueStart = -1;
  let found: [number, number] | undefined;
  const endMember = (at: number) => {
    if (valueStart >= 0 && key === wanted) {
      let end = at;
      while (end > valueStart && isSpace(json.charCodeAt(end - 1))) end--;
      found = [valueStart, end];
    }
    valueStart = -1;
  };
  while (i < json.length) {
    const c = json.charCodeAt(i);
    if (c === 0x22) {
      const start = i;
      i = endOfString(json, i);
      if (i < 0) return undefined;
      if (depth !== 1 || valueStart >= 0) continue;
      // A string at depth 1 outside a value is a member's name.
      key = json.slice(start, i);
      if (key.includes('\\')) return undefined;
      while (isSpace(json.charCodeAt(i))) i++;
      if (json.charCodeAt(i) !== 0x3a) return undefined;
      i++;
      while (isSpace(json.charCodeAt(i))) i++;
      valueStart = i;
      continue;
    }
    if (c === 0x7b || c === 0x5b) depth++;
    else if (c === 0x7d || c === 0x5d) {
      depth--;
      if (depth === 0) {
        endMember(i);
        return found;
      }
    } else if (c === 0x2c && depth === 1) endMember(i);
    i++;
  }
  return undefined;
}

/**
 * The value `memo` holds for the member `name` of an object's UTF-8 bytes, found without decoding
 * or scanning them when the member is the object's last and written as `{` or `,` + `"name":` + a
 * held text's bytes + `}` (whitespace after the text and around the brace): [start, end) of those
 * bytes, the held text itself (the same string for every document that carries it) and its value.
 * Undefined for any other shape (decode and scan it: topLevelMemberSpan).
 *
 * Not proof on its own: the caller must parse the text with `null` in place of [start, end) and use
 * this only if that parses to an object. Then it is the member JSON.parse reads, because: every
 * byte checked is ASCII, which decodes to itself and ends any UTF-8 sequence, so the text is the
 * decoding of the bytes before, the held text, and that of the bytes after; the name's opening
 * quote follows `{` or `,`, so it is not escaped: it opens a string, or closes one and leaves
 * `name` bare (starting with a letter: no JSON parses that); a string followed by `:` is a
 * member's name; the `}` after its value closes its object and only whitespace follows, so that
 * object is the document and the member its last (the one kept among duplicates). The held text is
 * an object or array JSON.parse read whole before, so it ends where it ends anywhere.
 */
export function knownLastMember(json: Uint8Array, name: string, memo: JsonValueMemo): { start: number; end: number; text: string; value: unknown } | undefined {
  if (!PLAIN_NAME.test(name)) return undefined;
  let end = json.length;
  while (isSpace(json[end - 1] as number)) end--;
  if (json[--end] !== 0x7d) return undefined;
  while (isSpace(json[end - 1] as number)) end--;
  for (const held of memo.entries()) {
    if (!held.bytes) continue;
    const start = end - held.bytes.length;
    const at = start - name.length - 3;
    if (at < 1) continue;
    const before = json[at - 1];
    if ((before === 0x7b || before === 0x2c) && isLabel(json, at, name) && Buffer.compare(json.subarray(start, end), held.bytes) === 0) {
      return { start, end, text: held.text, value: held.value };
    }
  }
  return undefined;
}

/** `"name":` at `at` (a plain name: one byte per character). */
function isLabel(json: Uint8Array, at: number, name: string): boolean {
  if (json[at] !== 0x22 || json[at + name.length + 1] !== 0x22 || json[at + name.length + 2] !== 0x3a) return false;
  for (let i = 0; i < name.length; i++) if (json[at + 1 + i] !== name.charCodeAt(i)) return false;
  return true;
}

/** A name no JSON can hold bare and none written with escapes. */
const PLAIN_NAME = /^[A-Za-z][A-Za-z0-9_]*$/;

/**
 * The parsed values of JSON texts seen before, by their exact text (bounded, newest kept): a member
 * that repeats byte for byte across documents (a receipt's embedded router evidence) is parsed once.
 * Only text that JSON.parse accepted is ever stored; values are frozen, as every reader shares them.
 */
export class JsonValueMemo {
  private readonly byText = new Map<string, HeldValue>();

  constructor(private readonly max = 8) {}

  get(text: string): unknown {
    return this.byText.get(text)?.value;
  }

  /** Every held text, with its value and (almost always) its UTF-8 bytes. */
  entries(): IterableIterator<HeldValue> {
    return this.byText.values();
  }

  set(text: string, value: unknown): void {
    const bytes = Buffer.from(text, 'utf8');
    this.byText.delete(text);
    // Found by its bytes only if they decode back to it (a lone surrogate does not: it becomes U+FFFD).
    this.byText.set(text, { text, value: deepFreeze(value), ...(bytes.toString('utf8') === text ? { bytes } : {}) });
    if (this.byText.size > this.max) this.byText.delete(this.byText.keys().next().value as string);
  }
}

export interface HeldValue {
  readonly text: string;
  readonly value: unknown;
  /** The text's UTF-8 bytes, when they decode back to exactly the text. */
  readonly bytes?: Uint8Array;
}

/** `v` and everything in it frozen (a value shared by every receipt that repeats its text must not be changed by one). */
export function deepFreeze(v: unknown): unknown {
  if (typeof v === 'object' && v !== null && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const x of Object.values(v)) deepFreeze(x);
  }
  return v;
}
