import type { ReceiptJob } from '../../src/receipts/journal.js';
import { tresorFormat } from '../../src/receipts/format-tresor.js';
import type { UpstreamReceipts } from '../../src/receipts/pipeline.js';
import { Semaphore, TokenBucket } from '../../src/receipts/rate.js';

/** A journal job for exchange `n` (a UUID-shaped id, digests of nothing in particular). */
export const job = (n: number, extra: Partial<ReceiptJob> = {}): ReceiptJob => ({
  job: `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`,
  upstream: 'tresor',
  request_id: `req-${n}`,
  method: 'POST',
  route: '/v1/chat/completions',
  status: 200,
  started_at: new Date().toISOString(),
  ended_at: new Date().toISOString(),
  complete: true,
  opted_out: false,
  receipt_id: `r-${n}`,
  request_sha256: '00'.repeat(32),
  response_sha256: '11'.repeat(32),
  request_bytes: 10,
  response_bytes: 20,
  app_key: false,
  ...extra,
});

const clock = () => new Date();

/** One Tresor upstream as the receipt pipeline sees it (audit mode; nothing fetched unless `get` is given). */
export function receiptUpstream(over: Partial<UpstreamReceipts> = {}): UpstreamReceipts {
  return {
    name: 'tresor',
    mode: 'audit',
    authorization: 'Bearer tr-x',
    get: () => Promise.reject(new Error('not used')),
    format: tresorFormat({ resolveKey: () => Promise.reject(new Error('not used')), keyPolicy: () => Promise.reject(new Error('not used')), hooks: {}, clock, sleep: async () => undefined, jwksDeadlineMs: 0 }),
    idHeader: 'x-tresor-receipt-id',
    bodyBlock: true,
    attestation: () => undefined,
    fetchPolicy: {},
    bucket: new TokenBucket(100, 100, clock, async () => undefined),
    concurrency: new Semaphore(4),
    maxPending: 100,
    ...over,
  };
}
