/**
 * `f` remembered per argument, for a pure function of a string whose callers repeat a handful of
 * values (a Host header, a route): at most `max` results are kept, and the memo is emptied when
 * full, so values an attacker chooses cannot make it grow.
 */
export function boundedMemo<T>(max: number, f: (key: string) => T): (key: string) => T {
  const known = new Map<string, T>();
  return (key) => {
    if (known.has(key)) return known.get(key) as T;
    const value = f(key);
    if (known.size >= max) known.clear();
    known.set(key, value);
    return value;
  };
}
