import { MalformedError } from '../errors/index.js';

/** Receipt ids come from the router: untrusted. A UUID is the normal form. */
const RECEIPT_ID_RE = /^[A-Za-z0-9._:-]{1,128}$/;

export function validateReceiptId(id: unknown): string {
  if (typeof id !== 'string' || !RECEIPT_ID_RE.test(id)) {
    throw new MalformedError('ERR_RECEIPT_ID_INVALID', 'expected a receipt id of 1..128 characters from [A-Za-z0-9._:-]');
  }
  return id;
}

/** The path to fetch a receipt: validated, then URL-encoded. Ids are never used as file names. */
export function receiptPath(id: string): string {
  return `/v1/receipts/${encodeURIComponent(validateReceiptId(id))}`;
}
