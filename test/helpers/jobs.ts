import type { ReceiptJob } from '../../src/receipts/journal.js';

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
