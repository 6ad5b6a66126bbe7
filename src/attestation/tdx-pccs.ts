import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describeCause, FetchError } from '../errors/index.js';
import { fetchPcsCollateral } from '../evidence/tdx/pcs.js';
import { MAX_COLLATERAL_BYTES, parseTdxCollateral, type TdxCollateral } from '../evidence/tdx/collateral.js';
import type { TdxCollateralSource } from '../evidence/tdx/index.js';
import type { Clock, Fetcher } from '../types.js';
import { withCollateralBytes } from './tdx-collateral-log.js';

export interface PccsCollateralOptions {
  /** The PCCS base URL (https; http only to loopback, checked by the config). */
  url: string;
  /** Bounded, timed GET (the operator's extra CA on top of the system store). */
  fetcher: Fetcher;
  /** Where fetched collateral is kept across restarts: `<fmspc>.json` ({ fetched_at, collateral }). */
  cacheDir: string;
  clock: Clock;
  /** Refetch after this long, and at the latest this long before the earliest nextUpdate. */
  refreshMs: number;
  /** After an attempt (failed or not), the next one waits at least this long. Default 30 s. */
  retryMs?: number;
  /** Told of every failed fetch (with cached collateral still in use, or none). */
  onFetchError?: (fmspc: string, error: Error, cachedInUse: boolean) => void;
}

interface Entry {
  collateral: TdxCollateral;
  fetchedAt: number;
}

const MAX_PLATFORMS = 256;

/** The earliest nextUpdate of the collateral's four parts. */
export function collateralNextUpdate(c: TdxCollateral): number {
  return Math.min(c.tcbInfo.nextUpdate.getTime(), c.qeIdentity.nextUpdate.getTime(), c.pckCrl.nextUpdate?.getTime() ?? Infinity, c.rootCaCrl.nextUpdate?.getTime() ?? Infinity);
}

/**
 * DCAP collateral from a PCCS (Intel PCS API v4), per FMSPC: kept in memory and on disk, fetched
 * when first needed and refreshed before its nextUpdate, one fetch at a time per FMSPC however
 * many attestations wait for it. `prepare(fmspc)` (async, before verification) fetches when due;
 * the source itself (sync, what the verifiers call) answers from the cache. A failed fetch keeps
 * the cached collateral in use (the verifier refuses it once stale: `ERR_TDX_COLLATERAL_STALE`);
 * with none cached it fails the attestation with `ERR_TDX_COLLATERAL_FETCH`.
 */
export function pccsCollateralSource(o: PccsCollateralOptions): TdxCollateralSource & { prepare: (fmspc: string) => Promise<void> } {
  const entries = new Map<string, Entry>();
  const inflight = new Map<string, Promise<void>>();
  const lastAttempt = new Map<string, { at: number; error?: FetchError }>();
  const retryMs = o.retryMs ?? 30_000;
  const file = (fmspc: string) => join(o.cacheDir, `${fmspc}.json`);

  const due = (e: Entry | undefined, now: number) => !e || now >= Math.min(e.fetchedAt + o.refreshMs, collateralNextUpdate(e.collateral) - o.refreshMs);

  const loadDisk = async (fmspc: string): Promise<Entry | undefined> => {
    let text: string;
    try {
      text = await readFile(file(fmspc), 'utf8');
    } catch {
      return undefined;
    }
    try {
      if (text.length > MAX_COLLATERAL_BYTES + 1024) return undefined;
      const saved = JSON.parse(text) as { fetched_at?: unknown; collateral?: unknown };
      const fetchedAt = typeof saved.fetched_at === 'string' ? Date.parse(saved.fetched_at) : NaN;
      if (Number.isNaN(fetchedAt)) return undefined;
      // The bytes archived with a pin are the collateral JSON as cached (what was fetched, re-serialised alike).
      return { collateral: withCollateralBytes(parseTdxCollateral(saved.collateral), JSON.stringify(saved.collateral)), fetchedAt };
    } catch {
      return undefined; // a damaged cache file is refetched
    }
  };

  const fetchNow = async (fmspc: string): Promise<void> => {
    const now = o.clock().getTime();
    if (lastAttempt.size >= MAX_PLATFORMS) lastAttempt.clear();
    lastAttempt.set(fmspc, { at: now });
    try {
      const { json, collateral } = await fetchPcsCollateral(o.url, fmspc, (url) => o.fetcher(url));
      const fetchedAt = o.clock().getTime();
      remember(fmspc, { collateral: withCollateralBytes(collateral, JSON.stringify(json)), fetchedAt });
      await mkdir(o.cacheDir, { recursive: true, mode: 0o700 });
      const tmp = `${file(fmspc)}.${process.pid}.tmp`;
      await writeFile(tmp, JSON.stringify({ fetched_at: new Date(fetchedAt).toISOString(), collateral: json }), { mode: 0o600 });
      await rename(tmp, file(fmspc));
    } catch (e) {
      const error = e instanceof FetchError ? e : new FetchError('ERR_TDX_COLLATERAL_FETCH', `collateral for FMSPC ${fmspc} from the PCCS ${o.url}: ${describeCause(e)}`, { cause: e });
      lastAttempt.set(fmspc, { at: now, error });
      o.onFetchError?.(fmspc, error, entries.has(fmspc));
      if (!entries.has(fmspc)) throw error;
    }
  };

  const remember = (fmspc: string, e: Entry) => {
    entries.delete(fmspc);
    if (entries.size >= MAX_PLATFORMS) entries.delete(entries.keys().next().value as string);
    entries.set(fmspc, e);
  };

  const prepare = (fmspc: string): Promise<void> => {
    if (!/^[0-9a-f]{12}$/.test(fmspc)) return Promise.reject(new FetchError('ERR_TDX_COLLATERAL_UNAVAILABLE', `expected a 12-hex-digit FMSPC, got ${JSON.stringify(fmspc)}`));
    const running = inflight.get(fmspc);
    if (running) return running;
    const now = o.clock().getTime();
    if (!due(entries.get(fmspc), now)) return Promise.resolve();
    const p = (async () => {
      if (!entries.has(fmspc)) {
        const disk = await loadDisk(fmspc);
        if (disk) remember(fmspc, disk);
        if (!due(disk, o.clock().getTime())) return;
      }
      const last = lastAttempt.get(fmspc);
      if (last && o.clock().getTime() - last.at < retryMs) {
        if (!entries.has(fmspc) && last.error) throw last.error;
        if (entries.has(fmspc)) return;
      }
      await fetchNow(fmspc);
    })().finally(() => inflight.delete(fmspc));
    inflight.set(fmspc, p);
    return p;
  };

  const source = (fmspc: string): TdxCollateral => {
    const e = entries.get(fmspc);
    if (!e) throw lastAttempt.get(fmspc)?.error ?? new FetchError('ERR_TDX_COLLATERAL_FETCH', `no collateral fetched yet for FMSPC ${fmspc} from the PCCS ${o.url}`);
    return e.collateral;
  };
  return Object.assign(source, { prepare });
}
