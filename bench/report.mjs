// Summaries (medians over rounds, ratios to the references) and the stdout table.

export function percentile(values, p) {
  const v = values.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const i = Math.min(v.length - 1, Math.max(0, Math.ceil((p / 100) * v.length) - 1));
  return v[i];
}
export const median = (values) => percentile(values, 50);

/** Median of every numeric metric over the rounds of one contender. */
export function medianOfRounds(rounds) {
  const keys = new Set(rounds.flatMap((r) => Object.keys(r)));
  const out = {};
  for (const k of keys) {
    const vals = rounds.map((r) => r[k]).filter((x) => typeof x === 'number');
    out[k] = vals.length ? median(vals) : (rounds.find((r) => r[k] !== undefined)?.[k] ?? null);
  }
  return out;
}

/** Ratio (or difference) of a metric to the reference contender's. */
export function compare(metric, rows, contender) {
  const ref = rows[metric.ref === 'direct' ? 'direct' : 'passthrough'];
  const mine = rows[contender]?.[metric.key];
  const theirs = ref?.[metric.key];
  if (typeof mine !== 'number' || typeof theirs !== 'number' || !metric.ref) return null;
  return metric.ref === 'direct' ? mine - theirs : theirs === 0 ? null : mine / theirs;
}

const fmt = (v, digits = 1) => (v === null || v === undefined ? '–' : typeof v === 'number' ? v.toFixed(digits) : String(v));

function table(head, body) {
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((r) => r[i].length)));
  const line = (cells) => `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join(' | ')} |`;
  return [line(head), `|${widths.map((w, i) => (i === 0 ? '-'.repeat(w + 2) : `${'-'.repeat(w + 1)}:`)).join('|')}|`, ...body.map(line)].join('\n');
}

/** One markdown table per scenario: contenders as rows, metrics and comparisons as columns. */
export function scenarioTable(s) {
  const head = ['contender'];
  for (const m of s.metrics) {
    head.push(m.label);
    if (m.ref === 'passthrough') head.push('×pass');
    if (m.ref === 'direct') head.push('+direct');
  }
  const body = Object.keys(s.rows).map((c) => {
    const cells = [c];
    for (const m of s.metrics) {
      cells.push(fmt(s.rows[c][m.key], m.digits ?? 1));
      if (m.ref) cells.push(c === 'direct' || (m.ref === 'passthrough' && c === 'passthrough') ? '' : fmt(compare(m, s.rows, c), m.ref === 'direct' ? (m.digits ?? 2) : 2));
    }
    return cells;
  });
  return table(head, body);
}

export function targetsTable(targets) {
  return table(
    ['target (tresor-attest)', 'measured', 'result'],
    targets.map((t) => [t.label, t.measured ?? '–', t.ok === null ? 'n/a' : t.ok ? 'met' : 'MISSED']),
  );
}

export function render(result) {
  const out = [];
  out.push(`tresor-attest benchmark ${result.startedAt} (${result.quick ? 'quick' : 'full'}): ${result.machine.cpus}× ${result.machine.cpuModel}, node ${result.machine.node}, ${result.elapsedSeconds} s`);
  for (const n of result.notes) out.push(`note: ${n}`);
  for (const s of result.scenarios) {
    out.push('', `## ${s.name}: ${s.title}${s.rounds ? ` (median of ${s.rounds} rounds)` : ''}`, '', scenarioTable(s));
  }
  out.push('', '## targets', '', targetsTable(result.targets));
  return out.join('\n');
}
