// The targets of issue 7 and issue 20 for tresor-attest (attestation enforced, receipts audit), checked against a run.
const row = (result, scenario, contender = 'tresor-attest') => result.scenarios.find((s) => s.name === scenario)?.rows[contender];
const f = (v, digits, unit) => (typeof v === 'number' ? `${v.toFixed(digits)}${unit}` : undefined);

function target(label, measure, ok) {
  return (result) => {
    const v = measure(result);
    return { label, measured: v.text, ok: v.value === undefined || v.value === null ? null : ok(v.value, v.ref) };
  };
}

const cpuPerReq = (c) =>
  target(`json c${c}: own CPU <= 130 µs/request`, (r) => ({ value: row(r, `json-c${c}`)?.cpuUsPerReq, text: f(row(r, `json-c${c}`)?.cpuUsPerReq, 0, ' µs') }), (v) => v <= 130);
const reqs = (c) =>
  target(
    `json c${c}: req/s >= bare passthrough`,
    (r) => {
      const mine = row(r, `json-c${c}`)?.reqPerSec;
      const ref = row(r, `json-c${c}`, 'passthrough')?.reqPerSec;
      return { value: mine, ref, text: mine && ref ? `${mine.toFixed(0)} vs ${ref.toFixed(0)}` : undefined };
    },
    (v, ref) => (ref === undefined ? null : v >= ref),
  );
const cpuPerStream = (c) =>
  target(`sse c${c}: own CPU <= 1.4 ms/stream`, (r) => ({ value: row(r, `sse-c${c}`)?.cpuMsPerStream, text: f(row(r, `sse-c${c}`)?.cpuMsPerStream, 3, ' ms') }), (v) => v <= 1.4);

// The targets of issue 20 (the hot path, second round): ratios to the bare passthrough, side by side in one run,
// judged on the daemon as configured by default (`tresor-attest`: streams over HTTP/2 to the router, the rest over HTTP/1.1).
/** `contender`'s figure over `ref`'s in one run (undefined when either row is missing). */
function versus(r, scenario, key, contender, ref) {
  const mine = row(r, scenario, contender)?.[key];
  const base = row(r, scenario, ref)?.[key];
  return typeof mine === 'number' && typeof base === 'number' && base > 0 ? { value: mine / base, mine, base } : undefined;
}
/** `contender` over the passthrough, accepted by `ok`; `digits` for the figures themselves. */
const versusPassthrough = (label, scenario, key, ok, contender, digits) =>
  target(
    label,
    (r) => {
      const v = versus(r, scenario, key, contender, 'passthrough');
      return { value: v?.value, text: v === undefined ? undefined : `${v.value.toFixed(2)}× (${v.mine.toFixed(digits)} vs ${v.base.toFixed(digits)})` };
    },
    ok,
  );
const ratio = (label, scenario, key, max, contender = 'tresor-attest') => versusPassthrough(label, scenario, key, (v) => v <= max, contender, 1);
const atLeast = (label, scenario, key, min, contender = 'tresor-attest') => versusPassthrough(label, scenario, key, (v) => v >= min, contender, 0);
/**
 * Reported beside a target, not judged: the floor (floor-receipts: the passthrough plus only a
 * receipt's irreducible work; floor-fetch-verify: plus only its GET and ES256 check; floor-digest:
 * plus only both digests) over the passthrough, the daemon with HTTP/1.1 only over it, and the HTTP/2-for-everything rows over
 * their HTTP/2 references.
 */
const besides = (scenario, key) =>
  target(
    `#20 ${scenario} (reported): floor-receipts, floor-fetch-verify, floor-digest and tresor-attest-http1 / passthrough; tresor-attest-h2 and floor-receipts-h2 / passthrough-h2`,
    (r) => {
      const parts = [
        ['floor', versus(r, scenario, key, 'floor-receipts', 'passthrough')],
        ['fetch+verify', versus(r, scenario, key, 'floor-fetch-verify', 'passthrough')],
        ['digests', versus(r, scenario, key, 'floor-digest', 'passthrough')],
        ['http1', versus(r, scenario, key, 'tresor-attest-http1', 'passthrough')],
        ['h2', versus(r, scenario, key, 'tresor-attest-h2', 'passthrough-h2')],
        ['h2 floor', versus(r, scenario, key, 'floor-receipts-h2', 'passthrough-h2')],
      ].filter(([, v]) => v !== undefined);
      return { value: undefined, text: parts.length ? parts.map(([n, v]) => `${n} ${v.value.toFixed(2)}×`).join(', ') : 'no floor, HTTP/1.1-only or HTTP/2 rows in this run' };
    },
    () => null,
  );

/**
 * Reported beside the upload's CPU target, not judged: its arithmetic floor in this run. A receipt binds
 * the exact bytes, so a design does at least the passthrough's forwarding plus SHA-256 of every byte
 * (measured in the bench process, the passthrough's `sha256MsPerMb`): (passthrough + SHA-256) / passthrough.
 * Strict on the main thread; on all threads the passthrough's figure includes its own collections on V8's
 * helper threads, which a design may happen to pay less of (docs/benchmarks.md, #20's tenth round).
 */
const digestFloor = () =>
  target(
    '#20 upload (reported): its floor, (passthrough + SHA-256 of every byte) / passthrough',
    (r) => {
      const p = row(r, 'upload', 'passthrough');
      if (typeof p?.cpuMsPerMb !== 'number' || typeof p.sha256MsPerMb !== 'number') return { value: undefined, text: 'no passthrough row with its SHA-256 figure in this run' };
      return { value: undefined, text: `${((p.cpuMsPerMb + p.sha256MsPerMb) / p.cpuMsPerMb).toFixed(2)}× (SHA-256 ${p.sha256MsPerMb.toFixed(2)} ms/MB over ${p.cpuMsPerMb.toFixed(2)})` };
    },
    () => null,
  );

export const TARGETS_20 = [
  ratio('#20 json c16 (receipts audit): own CPU <= 2.5× passthrough', 'json-c16', 'cpuUsPerReq', 2.5),
  besides('json-c16', 'cpuUsPerReq'),
  ratio('#20 json c64 (receipts audit): own CPU <= 2.5× passthrough', 'json-c64', 'cpuUsPerReq', 2.5),
  besides('json-c64', 'cpuUsPerReq'),
  ratio('#20 json c16 (receipts off): own CPU <= 1.2× passthrough', 'json-c16', 'cpuUsPerReq', 1.2, 'tresor-attest-receipts-off'),
  ratio('#20 json c64 (receipts off): own CPU <= 1.2× passthrough', 'json-c64', 'cpuUsPerReq', 1.2, 'tresor-attest-receipts-off'),
  ratio('#20 sse c100 (receipts audit): own CPU <= 1.2× passthrough', 'sse-c100', 'cpuMsPerStream', 1.2),
  besides('sse-c100', 'cpuMsPerStream'),
  ratio('#20 sse c100 (receipts off): own CPU <= 1.0× passthrough', 'sse-c100', 'cpuMsPerStream', 1.0, 'tresor-attest-receipts-off'),
  ratio('#20 upload: own CPU per MB <= 1.2× passthrough', 'upload', 'cpuMsPerMb', 1.2),
  besides('upload', 'cpuMsPerMb'),
  digestFloor(),
  atLeast('#20 upload: MB/s >= 0.95× passthrough', 'upload', 'mbPerSec', 0.95),
  besides('upload', 'mbPerSec'),
  target('#20 sse c1000 (the router speaking HTTP/2; by default streams ride it): <= 60 KB RSS per open stream', (r) => ({ value: row(r, 'sse-c1000')?.rssKbPerStream, text: f(row(r, 'sse-c1000')?.rssKbPerStream, 1, ' KB') }), (v) => v <= 60),
];

export const TARGETS = [
  cpuPerReq(1),
  cpuPerReq(16),
  cpuPerReq(64),
  reqs(1),
  reqs(16),
  reqs(64),
  cpuPerStream(1),
  cpuPerStream(100),
  cpuPerStream(1000),
  target(
    'sse c1: <= 0.5 ms added TTFB (vs direct)',
    (r) => {
      const mine = row(r, 'sse-c1')?.ttfbP50Ms;
      const ref = row(r, 'sse-c1', 'direct')?.ttfbP50Ms;
      const v = mine !== undefined && ref !== undefined ? mine - ref : undefined;
      return { value: v, text: f(v, 2, ' ms') };
    },
    (v) => v <= 0.5,
  ),
  target(
    'sse c1000: 1,000 streams held, none failed',
    (r) => {
      const s = row(r, 'sse-c1000');
      return { value: s?.errors, text: s ? `${s.streams} done, max ${s.maxOpen} open, ${s.errors} errors` : undefined };
    },
    (v) => v === 0,
  ),
  target('memory at 1,000 streams: <= 100 KB RSS per open stream', (r) => ({ value: row(r, 'sse-c1000')?.rssKbPerStream, text: f(row(r, 'sse-c1000')?.rssKbPerStream, 1, ' KB') }), (v) => v <= 100),
  target(
    'upload: RSS independent of upload size (large − small peak growth < 16 MB)',
    (r) => {
      const u = row(r, 'upload');
      const v = u && typeof u.rssDeltaLargeMb === 'number' ? u.rssDeltaLargeMb - u.rssDeltaSmallMb : undefined;
      return { value: v, text: u ? `+${u.rssDeltaSmallMb?.toFixed(1)} MB vs +${u.rssDeltaLargeMb?.toFixed(1)} MB` : undefined };
    },
    (v) => v < 16,
  ),
  target(
    'upload: MB/s >= bare passthrough',
    (r) => {
      const mine = row(r, 'upload')?.mbPerSec;
      const ref = row(r, 'upload', 'passthrough')?.mbPerSec;
      return { value: mine, ref, text: mine && ref ? `${mine.toFixed(0)} vs ${ref.toFixed(0)}` : undefined };
    },
    (v, ref) => (ref === undefined ? null : v >= ref),
  ),
  target('receipts: >= 5,000 verified/s on one core', (r) => ({ value: row(r, 'verify-receipts', 'library')?.perSec, text: f(row(r, 'verify-receipts', 'library')?.perSec, 0, '/s') }), (v) => v >= 5000),
  target(
    'attestation: later requests pay nothing (json c1 p50 − passthrough p50 <= 0.5 ms; receipts off where that row exists)',
    (r) => {
      const mine = (row(r, 'json-c1', 'tresor-attest-receipts-off') ?? row(r, 'json-c1'))?.p50Ms;
      const ref = row(r, 'json-c1', 'passthrough')?.p50Ms;
      const v = mine !== undefined && ref !== undefined ? mine - ref : undefined;
      return { value: v, text: f(v, 2, ' ms') };
    },
    (v) => v <= 0.5,
  ),
  target(
    'attestation: the first request after /readyz does not attest again (first < cold)',
    (r) => {
      const c = row(r, 'connection');
      return { value: c?.firstMs, ref: c?.coldMs, text: c ? `${c.firstMs?.toFixed(1)} ms vs cold ${c.coldMs?.toFixed(1)} ms` : undefined };
    },
    (v, ref) => (typeof ref === 'number' ? v < ref : null),
  ),
  target(
    'durability: the journal adds <= 1 ms p50 to a response (json c1: the wait for the journal, from the daemon\'s histogram)',
    (r) => {
      const v = row(r, 'json-c1')?.journalP50Ms ?? undefined;
      return { value: v, text: v === undefined ? 'no journal histogram in this run' : f(v, 3, ' ms') };
    },
    (v) => v <= 1,
  ),
  target(
    'receipts audit (fetch, check, record and journal) add to p50 (json c1, vs receipts off): reported, no target',
    (r) => {
      const mine = row(r, 'json-c1')?.p50Ms;
      const ref = row(r, 'json-c1', 'tresor-attest-receipts-off')?.p50Ms;
      const v = mine !== undefined && ref !== undefined ? mine - ref : undefined;
      return { value: v, text: v === undefined ? 'no receipts-off row in this run' : f(v, 2, ' ms') };
    },
    () => null,
  ),
  ...TARGETS_20,
];
