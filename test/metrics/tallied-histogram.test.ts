import { Histogram, Registry } from 'prom-client';
import { describe, expect, test } from 'vitest';
import { TalliedHistogram } from '../../src/metrics/tallied-histogram.js';

const BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];
const NAME = 'x_duration_seconds';
const HELP = 'Time (a help text with a \\ backslash).';

/** The same observations into prom-client's Histogram and a TalliedHistogram, each in its own registry. */
function both(observations: [Record<string, string>, number][]) {
  const theirs = new Registry();
  const ours = new Registry();
  const h = new Histogram({ name: NAME, help: HELP, labelNames: ['upstream', 'route', 'status_class'], buckets: BUCKETS, registers: [theirs] });
  const t = new TalliedHistogram(NAME, HELP, BUCKETS, [ours]);
  for (const [labels, v] of observations) {
    h.observe(labels, v);
    t.observe(t.series(JSON.stringify(labels), labels), v);
  }
  return { theirs, ours, h, t };
}

describe('TalliedHistogram', () => {
  test('the registry shows it exactly as prom-client shows its own Histogram (text and JSON), label sets in first-observed order', async () => {
    const a = { upstream: 'tresor', route: '/v1/chat/completions', status_class: '2xx' };
    const b = { upstream: 'tresor', route: '/v1/models', status_class: '5xx' };
    const c = { upstream: 'other "quoted"\nname', route: '/v1/models/{id}', status_class: '4xx' };
    const values = [0, 0.004, 0.005, 0.0051, 0.07, 0.25, 1.5, 9.99, 30, 599, 600, 601, 1e6, 0.3];
    const { theirs, ours } = both(values.flatMap((v, i) => [[i % 3 === 0 ? a : i % 3 === 1 ? b : c, v] as [Record<string, string>, number], [a, v / 2] as [Record<string, string>, number]]));
    const text = await ours.metrics();
    expect(text).toBe(await theirs.metrics());
    expect(text).toContain('x_duration_seconds_bucket{le="+Inf",upstream="tresor",route="/v1/chat/completions",status_class="2xx"} 19');
    expect(await ours.getMetricsAsJSON()).toEqual(await theirs.getMetricsAsJSON());
  });

  test('nothing observed: no sample lines (as prom-client); reset forgets the observations', async () => {
    const empty = both([]);
    expect(await empty.ours.metrics()).toBe(await empty.theirs.metrics());
    const one = both([[{ upstream: 'u', route: '/v1/x', status_class: '2xx' }, 0.2]]);
    one.h.reset();
    one.t.reset();
    expect(await one.ours.metrics()).toBe(await one.theirs.metrics());
    expect(await one.ours.metrics()).not.toContain('_count');
  });
});
