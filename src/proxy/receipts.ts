import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import type { AttestationManager } from '../attestation/manager.js';
import { auditAttestation, type AttestedIdentity } from '../attestation/identity.js';
import { frozenWithJson } from '../util/frozen-json.js';
import type { TresorAttester } from '../attestation/tresor.js';
import type { ResolvedConfig, UpstreamConfig } from '../config/types.js';
import type { ReceiptHooks } from '../receipts/verdict.js';
import { readFile } from 'node:fs/promises';
import { CheckpointSigner } from '../audit/checkpoint.js';
import { describeCause, ConfigError, FetchError } from '../errors/index.js';
import type { Clock, Fetcher } from '../types.js';
import { aciFormat } from '../receipts/format-aci.js';
import { tresorFormat } from '../receipts/format-tresor.js';
import type { AciAttester } from '../attestation/aci.js';
import type { PinaivuAttester } from '../attestation/pinaivu.js';
import type { NearAttester } from '../attestation/near.js';
import { nearFormat } from '../receipts/format-near.js';
import { fetchReceipt } from '../receipts/fetch.js';
import { pinaivuFormat, proofPath } from '../receipts/format-pinaivu.js';
import { createInferenceCheck, type InferencePolicy } from '../receipts/inference.js';
import { createReceiptKeyPolicy } from '../receipts/key-policy.js';
import { createRemoteJwks, MAX_JWKS_BYTES } from '../receipts/jwks.js';
import { RECEIPT_ID_HEADER, ReceiptPipeline, type UpstreamReceipts } from '../receipts/pipeline.js';
import { Semaphore, TokenBucket } from '../receipts/rate.js';
import type { VerdictSummary } from '../receipts/verdicts.js';
import type { Upstream } from './upstream.js';
import type { DaemonMetrics } from '../metrics/metrics.js';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());

/** A JWKS fetcher over the upstream's attested pool (the JWKS lives on the router's origin). */
function poolFetcher(u: Upstream, timeoutMs: number): Fetcher {
  return async (url, init) => {
    const res = await u.get(new URL(url).pathname, { headers: init?.headers ?? {}, timeoutMs, maxBytes: MAX_JWKS_BYTES }).catch((e: unknown) => {
      throw e instanceof FetchError ? e : new FetchError('ERR_JWKS_FETCH', (e as Error).message, { cause: e });
    });
    return {
      status: res.status,
      body: res.body,
      headers: { get: (n: string) => [res.headers[n.toLowerCase()]].flat()[0] ?? null },
    };
  };
}

/** `receipts.inference_policy` as the check takes it (a kind with an empty list has no entry). */
function inferencePolicy(p: UpstreamConfig['receipts']['inference_policy']): InferencePolicy {
  return {
    ...(p.snp.allowed_measurements.length > 0 ? { snp: { allowedMeasurements: p.snp.allowed_measurements } } : {}),
    ...(p.nitro.allowed_pcrs.length > 0 ? { nitro: { allowedPcrs: p.nitro.allowed_pcrs } } : {}),
  };
}

/** Tresor: the id in the body's `tresor` block (or X-Tresor-Receipt-Id), an ES256 JWS checked with the router's JWKS. */
function tresorReceipts(
  c: UpstreamConfig,
  u: Upstream,
  manager: AttestationManager | undefined,
  attester: TresorAttester | undefined,
  clock: Clock,
  metrics: DaemonMetrics | undefined,
) {
  const r = c.receipts;
  const jwks = createRemoteJwks({
    url: `${u.origin}${r.jwks_path}`,
    fetcher: poolFetcher(u, 10_000),
    clock,
    maxAgeMs: r.jwks_max_age_seconds * 1000,
    cooldownMs: r.jwks_cooldown_seconds * 1000,
    ...(metrics ? { onFetch: (result: 'ok' | 'error') => metrics.jwksFetch(c.name, result) } : {}),
  });
  const hooks: ReceiptHooks = {
    ...(attester && manager ? { verifyRouterAttestation: (block, at, raw) => attester.checkReceiptBlock(block, at, () => manager.known(), raw) } : {}),
    verifyInferenceAttestation: createInferenceCheck(inferencePolicy(r.inference_policy)),
  };
  // The trust bundle of a fresh identity says which keys may sign; without one, wait, never "any key".
  const keyPolicy = createReceiptKeyPolicy({ current: () => manager?.current(), attestationOff: !manager || manager.mode === 'off', clock, sleep, waitMs: r.deadline_seconds * 1000 });
  return { format: tresorFormat({ resolveKey: jwks.resolve, keyPolicy, hooks, clock, sleep, jwksDeadlineMs: r.deadline_seconds * 1000 }), idHeader: RECEIPT_ID_HEADER, bodyBlock: true };
}

/** ACI: the id in X-Receipt-Id; the receipt must name a keyset this daemon established by attestation. */
function aciReceipts(c: UpstreamConfig, aci: AciAttester | undefined) {
  const policy = { requireUpstreamVerified: c.aci.require_upstream_verified, requireUpstreamEvent: c.aci.require_upstream_verified };
  return { format: aciFormat({ keysetByDigest: (d) => aci?.keysetByDigest(d), policy }), idHeader: 'x-receipt-id', bodyBlock: false };
}

/** Pinaivu: the id in the answer's top-level `request_id`; the documented receipt, then the coordinator's proof by a key pinned by attestation. */
function pinaivuReceipts(c: UpstreamConfig, u: Upstream, pinaivu: PinaivuAttester | undefined, clock: Clock) {
  const r = c.receipts;
  const format = pinaivuFormat({
    coordinator: (hex) => pinaivu?.coordinator(hex),
    ...(pinaivu ? { refreshCoordinator: () => pinaivu.refreshCoordinator((path, init) => u.get(path, init)) } : {}),
    // The proof is public on the coordinator; the upstream's own key (never the app's) goes along if configured.
    getProof: (id, endedAt) =>
      fetchReceipt(id, endedAt, {
        get: (path, init) => u.get(path, init),
        authorization: u.authorization,
        clock,
        sleep,
        path: proofPath,
        parse: (body) => Buffer.from(body).toString('utf8'),
        policy: { notFoundGraceMs: r.not_found_grace_seconds * 1000, deadlineMs: r.deadline_seconds * 1000 },
      }),
    clock,
  });
  // The id is the answer's `request_id` (seed 004); the header is only a fallback for non-JSON answers
  // (Pinaivu is not known to send one). Never X-Request-Id: the daemon sets that one itself.
  return { format, idHeader: 'x-pinaivu-request-id', bodyBlock: 'request_id' as const };
}

/**
 * NEAR (and the aci/1 legacy alias): the id is the completion's own top-level `id` (the chat id),
 * else `X-Receipt-Id` (an ACI router files legacy signatures under the receipt id too); the
 * signature must be by a signer this daemon saw attested.
 */
function nearReceipts(u: Upstream, near: NearAttester | undefined) {
  const format = nearFormat({ signer: (a) => near?.signer(a), ...(near ? { lookupSigner: (a: string, model: string | undefined) => near.lookupSigner(a, model, (path, init) => u.get(path, init)) } : {}) });
  return { format, idHeader: 'x-receipt-id', bodyBlock: 'id' as const };
}

/** The receipt pipeline for every upstream whose receipts are not off (undefined if none). */
export async function openReceiptPipeline(
  config: ResolvedConfig,
  deps: {
    upstreams: ReadonlyMap<string, Upstream>;
    managers: ReadonlyMap<string, AttestationManager>;
    attesters: ReadonlyMap<string, TresorAttester>;
    aciAttesters: ReadonlyMap<string, AciAttester>;
    pinaivuAttesters?: ReadonlyMap<string, PinaivuAttester>;
    nearAttesters?: ReadonlyMap<string, NearAttester>;
    clock: Clock;
    logger: Logger;
    metrics?: DaemonMetrics;
    /** Keep the journal and the audit log in memory (the library without a state dir). */
    inMemory?: boolean;
    onVerdict?: (v: VerdictSummary) => void;
  },
): Promise<ReceiptPipeline | undefined> {
  const list: UpstreamReceipts[] = [];
  for (const c of config.upstreams) {
    const r = c.receipts;
    if (r.mode === 'off') continue;
    const u = deps.upstreams.get(c.name) as Upstream;
    const manager = deps.managers.get(c.name);
    const where: Pick<UpstreamReceipts, 'format' | 'idHeader' | 'bodyBlock'> =
      c.profile === 'aci'
        ? aciReceipts(c, deps.aciAttesters.get(c.name))
        : c.profile === 'pinaivu'
          ? pinaivuReceipts(c, u, deps.pinaivuAttesters?.get(c.name), deps.clock)
          : c.profile === 'near'
            ? nearReceipts(u, deps.nearAttesters?.get(c.name))
            : tresorReceipts(c, u, manager, deps.attesters.get(c.name), deps.clock, deps.metrics);
    list.push({
      name: c.name,
      mode: r.mode,
      authorization: u.authorization,
      // Receipt paths are absolute on the router (`/v1/receipts/{id}`); the pool adds the URL prefix.
      get: (path, init) => u.get(path, init),
      ...where,
      attestation: exchangeAttestation(manager, c.attestation.mode),
      fetchPolicy: { notFoundGraceMs: r.not_found_grace_seconds * 1000, deadlineMs: r.deadline_seconds * 1000 },
      firstFetchDelayMs: r.fetch_delay_seconds * 1000,
      bucket: new TokenBucket(r.fetches_per_second, Math.max(1, Math.ceil(r.fetches_per_second)), deps.clock, sleep),
      concurrency: new Semaphore(r.concurrency),
      maxPending: r.max_pending,
    });
  }
  if (list.length === 0) return undefined;
  return ReceiptPipeline.open({
    stateDir: deps.inMemory ? undefined : config.state_dir,
    ...(deps.onVerdict ? { onVerdict: deps.onVerdict } : {}),
    audit: {
      dir: config.audit.dir,
      maxFileBytes: config.audit.max_file_bytes,
      retentionFiles: config.audit.retention_files,
      archiveReceipts: config.audit.archive_receipts,
      archiveEvidence: config.audit.archive_evidence,
      diskFullAction: config.audit.disk_full_action,
      signer: await auditSigner(config),
      checkpointIntervalMs: config.audit.checkpoint_interval_seconds * 1000,
    },
    clock: deps.clock,
    logger: deps.logger.child({ component: 'receipts' }),
    upstreams: list,
    ...(deps.metrics ? { onJournaled: (name: string, s: number) => deps.metrics?.journaled(name, s) } : {}),
  });
}

/**
 * The attestation an exchange's receipt record names: the pin of the connection its request was
 * written on (during a key rotation, the older pin for an exchange still running on the old
 * connection), else the pin in force. An exchange in flight when its pin lapsed finished (its
 * request went out while the pin was good): the record says when and why it lapsed.
 *
 * One summary per pin (an identity object is never changed: a new pin is a new object), frozen
 * with its JSON text, which the journal splices into each job line (util/frozen-json.ts) instead
 * of serialising it again; a lapse's summary is made per exchange (rare).
 */
export function exchangeAttestation(manager: AttestationManager | undefined, mode: string): UpstreamReceipts['attestation'] {
  const o = { mode, testRoots: manager?.testRoots ?? false };
  const perPin = new WeakMap<AttestedIdentity, Readonly<Record<string, unknown>>>();
  const unpinned = frozenWithJson(auditAttestation(undefined, o));
  const summary = (id: AttestedIdentity | undefined) => {
    if (!id) return unpinned;
    let s = perPin.get(id);
    if (!s) perPin.set(id, (s = frozenWithJson(auditAttestation(id, o))));
    return s;
  };
  return (since, socket) => {
    const pinned = socket && manager?.pinOf(socket);
    const lapses = since ? (manager?.lapsesSince(since) ?? []) : [];
    const lapse = pinned ? lapses.find((l) => l.spkiSha256 === pinned.spkiSha256) : lapses[0];
    const id = pinned || (lapse ? manager?.known().find((k) => k.spkiSha256 === lapse.spkiSha256) : manager?.current());
    const base = summary(id);
    return lapse ? { ...base, tls_spki_sha256: lapse.spkiSha256, pin_lapsed_in_flight: { at: lapse.at, code: lapse.code } } : base;
  };
}

/** The checkpoint signer from audit.signing_key_file (undefined without one). */
export async function auditSigner(config: ResolvedConfig): Promise<CheckpointSigner | undefined> {
  const file = config.audit.signing_key_file;
  if (file === null) return undefined;
  const pem = await readFile(file).catch((e: unknown) => {
    throw new ConfigError('ERR_CONFIG_AUDIT_KEY', `audit.signing_key_file: cannot read ${file}: ${describeCause(e, { code: true })}`);
  });
  return CheckpointSigner.fromPem(pem, file);
}

const RECEIPT_PATH = /^\/receipts\/([A-Za-z0-9._:-]{1,128})$/;

/**
 * `GET /receipts/{id}[?wait=<seconds>]`: the verdict of an exchange, by receipt id or by the
 * request id the daemon echoes in `X-Request-Id`. 200 when recorded, 202 while pending (after
 * waiting up to `wait` seconds, at most 60), 404 when unknown to this run.
 */
export async function serveVerdict(req: IncomingMessage, res: ServerResponse, pipeline: ReceiptPipeline | undefined): Promise<boolean> {
  const url = new URL(req.url ?? '/', 'http://localhost');
  const m = RECEIPT_PATH.exec(url.pathname);
  if (!m || (req.method !== 'GET' && req.method !== 'HEAD')) return false;
  const send = (status: number, body: unknown) => {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
    res.end(req.method === 'HEAD' ? undefined : text);
  };
  if (!pipeline) {
    send(404, { error: { message: 'receipts are off for every upstream', type: 'invalid_request_error', code: 'receipts_off' } });
    return true;
  }
  const id = m[1] as string;
  const wait = Math.min(60, Math.max(0, Number(url.searchParams.get('wait') ?? 0) || 0));
  const abort = new AbortController();
  res.once('close', () => abort.abort());
  const v = wait > 0 ? await pipeline.verdicts.wait(id, wait * 1000, abort.signal) : pipeline.verdicts.get(id);
  if (!v) send(404, { error: { message: `no exchange with receipt or request id ${id} is known to this run`, type: 'invalid_request_error', code: 'receipt_unknown' } });
  else send(v.status === 'done' ? 200 : 202, v);
  return true;
}
