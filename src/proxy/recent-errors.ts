/** One recent failure, for the status page: codes and names only, never a message with data, a key or a body. */
export interface RecentError {
  at: string;
  upstream: string;
  /** `attestation` (a connection or refresh that failed verification) or `request` (an exchange that failed). */
  kind: 'attestation' | 'request';
  code: string;
  /** Attestation: startup | connection | refresh; request: the route template. */
  where: string;
  status?: number;
}

/** A small ring of the latest failures, newest first. */
export class RecentErrors {
  private readonly items: RecentError[] = [];

  constructor(private readonly max = 50) {}

  add(e: RecentError): void {
    this.items.unshift(e);
    if (this.items.length > this.max) this.items.length = this.max;
  }

  list(): readonly RecentError[] {
    return this.items;
  }
}
