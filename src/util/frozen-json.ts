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
  for (const key in o) {
    const v = o[key];
    if (v !== null && (typeof v === 'object' || typeof v === 'function')) return o;
  }
  texts.set(o, JSON.stringify(o));
  return o;
}

/** `JSON.stringify(o)` when `o` went through frozenWithJson (and got a text), else undefined. */
export function frozenJson(o: object): string | undefined {
  return texts.get(o);
}
