/**
 * Shared types. Time, network and trust roots are always injected: verifiers take an `at: Date`
 * (or a `Clock`) and a `Fetcher`, never `Date.now()` or a global fetch.
 */

declare const verified: unique symbol;

/**
 * A value that came out of a `verify*` function. Policy functions accept only `Verified<T>`, so
 * the compiler rejects policy over unverified input. Only verify modules cast to this type
 * (`asVerified`), and test/invariants.test.ts checks that by grep.
 */
export type Verified<T> = Readonly<T> & { readonly [verified]: true };

/** The one sanctioned cast into `Verified<T>`; call it only at the end of a successful verify. */
export function asVerified<T>(value: T): Verified<T> {
  return Object.freeze(value) as Verified<T>;
}

export type Clock = () => Date;


/** Minimal fetch shape the verifiers need; the daemon passes an attested, size-bounded one. */
export type Fetcher = (url: string, init?: { headers?: Record<string, string>; signal?: AbortSignal }) => Promise<{
  status: number;
  headers: { get(name: string): string | null };
  body: Uint8Array;
}>;
