import type { Registry } from 'prom-client';

/** One label set of a TalliedHistogram: its bucket counts (not cumulative), sum and count. */
export interface Series {
  readonly labels: Readonly<Record<string, string>>;
  readonly counts: number[];
  sum: number;
  count: number;
}

/** What prom-client's registry reads from a metric (the shape its own Histogram returns). */
interface Sample {
  labels: Record<string, string | number>;
  sharedLabels?: Readonly<Record<string, string>>;
  value: number;
  metricName: string;
  exemplar?: null | undefined;
}

/**
 * A histogram for the per-request path. prom-client's `observe` validates and hashes its label
 * object on every call (and builds a closure); here the caller keeps the `Series` of a label set
 * (made once, `series()`) and `observe` is a bucket search and three additions. prom-client's
 * registry formats it as its own Histogram: the same lines, labels, order and values (buckets
 * cumulative, then `+Inf`, `_sum`, `_count`, label sets in the order they were first observed).
 */
export class TalliedHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private readonly all = new Map<string, Series>();

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly buckets: readonly number[],
    registers: Registry[],
  ) {
    for (const r of registers) r.registerMetric(this as unknown as Parameters<Registry['registerMetric']>[0]);
  }

  /** The series of a label set, by a key the caller makes unique per label set. */
  series(key: string, labels: Record<string, string>): Series {
    let s = this.all.get(key);
    if (!s) this.all.set(key, (s = { labels, counts: this.buckets.map(() => 0), sum: 0, count: 0 }));
    return s;
  }

  observe(s: Series, value: number): void {
    if (!Number.isFinite(value)) return;
    const { buckets } = this;
    for (let i = 0; i < buckets.length; i++) {
      if (value <= (buckets[i] as number)) {
        s.counts[i] = (s.counts[i] as number) + 1;
        break;
      }
    }
    s.sum += value;
    s.count++;
  }

  /** Forget every observation (as prom-client's reset: no line until a label set is observed again). */
  reset(): void {
    for (const s of this.all.values()) {
      s.counts.fill(0);
      s.sum = 0;
      s.count = 0;
    }
  }

  get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: Sample[] }> {
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values: this.samples(true) });
  }

  getForPromString(): Promise<{ name: string; help: string; type: string; aggregator: string; values: Sample[] }> {
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values: this.samples(false) });
  }

  /** As prom-client's Histogram: `get()` splays the label set into each sample's labels, the text form keeps it shared. */
  private samples(splay: boolean): Sample[] {
    const out: Sample[] = [];
    const bucket = `${this.name}_bucket`;
    for (const s of this.all.values()) {
      if (s.count === 0) continue;
      // Buckets carry `exemplar: null` (no exemplars), as prom-client's own.
      const sample = (labels: Record<string, string | number>, value: number, metricName: string, exemplar?: null): Sample =>
        splay ? { labels: { ...labels, ...s.labels }, value, metricName, exemplar } : { labels, sharedLabels: s.labels, value, metricName, exemplar };
      let acc = 0;
      this.buckets.forEach((le, i) => {
        acc += s.counts[i] as number;
        out.push(sample({ le }, acc, bucket, null));
      });
      out.push(sample({ le: '+Inf' }, s.count, bucket, null), sample({}, s.sum, `${this.name}_sum`), sample({}, s.count, `${this.name}_count`));
    }
    return out;
  }
}
