/**
 * The JSON text of a frozen flat object, made once and kept by the object's identity: a value shared
 * by many lines (a pin's attestation summary, in every journal job under that pin) is spliced in
 * as text instead of being serialised again per line. Only what `frozenWithJson` froze has a text,
 * and a frozen object whose members are all scalars cannot change: the text is always that
 * object's, never another with equal-looking content.
 */
const texts = new WeakMap<object, string>();

/** `o` frozen, with its JSON text kept; an object with a non-scalar member is frozen but gets no text. */
export function frozenWithJson<T extends Record<string, unknown>>(o: T): Readonly<T> {
  Object.freeze(o);
  if (scalarMembers(o)) texts.set(o, JSON.stringify(o));
  return o;
}

function scalarMembers(o: object): boolean {
  for (const key in o) {
    const v = (o as Record<string, unknown>)[key];
    if (v !== null && (typeof v === 'object' || typeof v === 'function')) return false;
  }
  return true;
}

/** `JSON.stringify(o)` when `o` went through frozenWithJson (and got a text), else undefined. */
export function frozenJson(o: object): string | undefined {
  return texts.get(o);
}

/** An object JSON writes member by member (an array, or a toJSON anywhere on its chain, it does not). */
const isFlat = (o: unknown): o is Record<string, unknown> => typeof o === 'object' && o !== null && !Array.isArray(o) && !('toJSON' in o);

/**
 * Lists of flat objects that repeat member for member (a verified receipt's checks under one pin),
 * kept frozen with their JSON text: `shared` answers a kept list equal to the one given, which the
 * caller then holds instead, so that its text is spliced in wherever it is written (audit/format.ts).
 * Equal means the same member names in the same order with the same (===) scalar values, item by
 * item: exactly what makes JSON.stringify write the same text. At most `max` lists, newest first.
 */
export class FlatListMemo<T extends object> {
  private kept: { list: readonly T[]; names: string[][] }[] = [];

  constructor(private readonly max = 4) {}

  /** The kept list equal to `list`, or undefined. */
  shared(list: readonly T[]): readonly T[] | undefined {
    for (const k of this.kept) if (equalFlat(list, k.list, k.names)) return k.list;
    return undefined;
  }

  /** Keep `list` (frozen, with its text); false when it is not a list of flat objects with scalar members. */
  keep(list: readonly T[]): boolean {
    if (!list.every((item) => isFlat(item) && scalarMembers(item))) return false;
    for (const item of list) Object.freeze(item);
    texts.set(Object.freeze(list), JSON.stringify(list));
    this.kept.unshift({ list, names: list.map((item) => Object.keys(item)) });
    this.kept.length = Math.min(this.kept.length, this.max);
    return true;
  }
}

/** `list` item for item the same names (in order) and the same values as the kept, flat, `than`. */
function equalFlat(list: readonly object[], than: readonly object[], names: string[][]): boolean {
  if (list.length !== than.length) return false;
  for (let i = 0; i < list.length; i++) {
    const item = list[i] as Record<string, unknown>;
    const kept = than[i] as Record<string, unknown>;
    const keys = names[i] as string[];
    if (!isFlat(item)) return false;
    let n = 0;
    // for-in also walks inherited names (which JSON leaves out): one there is a mismatch, never a false match.
    for (const key in item) if (key !== keys[n++] || item[key] !== kept[key]) return false;
    if (n !== keys.length) return false;
  }
  return true;
}
