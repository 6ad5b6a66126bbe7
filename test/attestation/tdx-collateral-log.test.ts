import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { collateralRole, loggedCollateral } from '../../src/attestation/tdx-collateral-log.js';
import { pccsCollateralSource } from '../../src/attestation/tdx-pccs.js';
import { fileCollateral } from '../../src/attestation/tdx.js';
import { parseTdxQuote, quoteFmspc } from '../../src/evidence/tdx/index.js';
import { boundedFetcher } from '../../src/util/fetch.js';
import { startTestPccs, type CollateralJson, type TestPccs } from '../helpers/pccs.js';

const vec = (f: string) => readFileSync(new URL(`../vectors/${f}`, import.meta.url));
const COLLATERAL_BYTES = vec('tdx-dcap-qvl-quote-2025-06.collateral.json');
const FMSPC = quoteFmspc(parseTdxQuote(new Uint8Array(vec('tdx-dcap-qvl-quote-2025-06.bin'))).pckChainPem);
const T0 = new Date('2025-07-01T00:00:00Z');

let pccs: TestPccs | undefined;
afterEach(async () => {
  await pccs?.close();
  pccs = undefined;
});

describe('the Intel collateral an attestation used is noted with its exact bytes (to archive with the pin)', () => {
  test('a collateral file: the bytes as read, under tdx_collateral_<fmspc>; once per platform however many quotes', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'tdx-log-')), 'c.json');
    writeFileSync(file, COLLATERAL_BYTES);
    const read = fileCollateral(file, 'tdx.collateral_file');
    const used = new Map<string, Uint8Array | string>();
    const source = loggedCollateral(() => read(), used);
    expect(source?.(FMSPC).tcbInfo.fmspc).toBe(FMSPC);
    source?.(FMSPC);
    expect([...used.keys()]).toEqual([collateralRole(FMSPC)]);
    expect(Buffer.from(used.get(collateralRole(FMSPC)) as Uint8Array)).toEqual(COLLATERAL_BYTES);
  });

  test('a PCCS: the collateral as fetched, and byte for byte the same when read back from its cache after a restart', async () => {
    pccs = await startTestPccs(JSON.parse(COLLATERAL_BYTES.toString('utf8')) as CollateralJson);
    const cacheDir = mkdtempSync(join(tmpdir(), 'tdx-log-pccs-'));
    const make = () => pccsCollateralSource({ url: (pccs as TestPccs).url, fetcher: boundedFetcher({ maxBytes: 2 * 1024 * 1024, timeoutMs: 5000, ca: (pccs as TestPccs).caPem }), cacheDir, clock: () => T0, refreshMs: 86_400_000 });
    const noted = async (s: ReturnType<typeof make>) => {
      const used = new Map<string, Uint8Array | string>();
      const logged = loggedCollateral(s, used);
      await logged?.prepare?.(FMSPC);
      logged?.(FMSPC);
      return used.get(collateralRole(FMSPC));
    };
    const fetched = await noted(make());
    expect(JSON.parse(String(fetched))).toEqual(JSON.parse(COLLATERAL_BYTES.toString('utf8')));
    const hits = pccs.hits.length;
    expect(await noted(make())).toBe(fetched);
    expect(pccs.hits).toHaveLength(hits);
  });

  test('no collateral configured: nothing to note (TCB status unknown)', () => {
    expect(loggedCollateral(undefined, new Map())).toBeUndefined();
  });
});
