import type { TdxCollateral, TdxCollateralSource } from '../evidence/tdx/index.js';

/**
 * The exact bytes each collateral was parsed from (a `tdx.collateral_file` or `collateral_dir`
 * file as read, a PCCS answer as assembled and cached), so a pin can archive the collateral that
 * decided its TCB status (docs/wire.md §7.2). Keyed by the parsed object: no copy is kept.
 */
const collateralBytes = new WeakMap<TdxCollateral, Uint8Array | string>();

/** Remember that `c` was parsed from `bytes`; returns `c`. */
export function withCollateralBytes(c: TdxCollateral, bytes: Uint8Array | string): TdxCollateral {
  collateralBytes.set(c, bytes);
  return c;
}

/** The evidence role of the collateral used for quotes of platform `fmspc` (12 lowercase hex). */
export const collateralRole = (fmspc: string) => `tdx_collateral_${fmspc}`;

/**
 * `source` (if any) as one attestation sees it: every collateral it answers with is noted in
 * `used` (by role, its exact bytes), so that attestation's pin archives what its verifier used.
 */
export function loggedCollateral(source: TdxCollateralSource | undefined, used: Map<string, Uint8Array | string>): TdxCollateralSource | undefined {
  if (!source) return undefined;
  const logged = (fmspc: string) => {
    const c = source(fmspc);
    const bytes = collateralBytes.get(c);
    if (bytes !== undefined) used.set(collateralRole(fmspc), bytes);
    return c;
  };
  return source.prepare ? Object.assign(logged, { prepare: source.prepare }) : logged;
}
