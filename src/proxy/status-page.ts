import { createHash } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { FINAL_VERDICTS } from '../receipts/record.js';

/**
 * The local status page (`GET /`): one self-contained HTML document, inline CSS and script, no
 * build step, no CDN, works offline. It reads `/status`, `/status/recent`, `/metrics` and
 * `/status/receipts` (same origin, same access rules) every few seconds and renders only what
 * those return: identities, expiry, circuit breaker, JWKS and bundle fetches, rate charts (SVG
 * drawn here), verdict counts, the audit log searched and paged with filters, one receipt's
 * detail on click, grouped errors. Fields it does not know (added to /status later) are shown
 * as they are, under "more". Data is inserted as text nodes only (never as
 * HTML), and a strict Content-Security-Policy allows nothing but this script and same-origin fetches.
 */
const SCRIPT = String.raw`
'use strict';
const REFRESH_MS = Math.max(1, Number(new URLSearchParams(location.search).get('refresh')) || 5) * 1000;
const VERDICTS = ${JSON.stringify(FINAL_VERDICTS)};
const $ = (s) => document.querySelector(s);
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== undefined && v !== null) e.setAttribute(k, String(v));
  for (const c of children) e.append(c instanceof Node ? c : String(c ?? ''));
  return e;
}
function ago(iso) {
  const t = Date.parse(iso);
  if (!Number.isFinite(t)) return '';
  const s = Math.round((t - Date.now()) / 1000);
  const a = Math.abs(s);
  const txt = a < 90 ? a + ' s' : a < 5400 ? Math.round(a / 60) + ' min' : a < 129600 ? Math.round(a / 3600) + ' h' : Math.round(a / 86400) + ' d';
  return s >= 0 ? 'in ' + txt : txt + ' ago';
}
function badge(text, cls) { return el('span', { class: 'badge ' + cls }, text); }
const verdictClass = (v) => (v === 'verified' ? 'ok' : v === 'opted_out' ? 'neutral' : 'bad');
const PAGE = Math.max(1, Math.min(200, Number(new URLSearchParams(location.search).get('page')) || 50));
/** Any object as a definition list (keys as given): fields the page does not know yet still show. */
function fields(obj, skip) {
  const dl = el('dl', { class: 'fields' });
  for (const [k, v] of Object.entries(obj || {})) {
    if ((skip && skip.has(k)) || v === undefined || v === null || v === '') continue;
    dl.append(el('dt', {}, k), el('dd', { 'data-key': k, class: typeof v === 'string' && /^[0-9a-f]{32,}$/.test(v) ? 'hex' : '' }, typeof v === 'object' ? JSON.stringify(v) : String(v)));
  }
  return dl;
}
function more(obj, known, title) {
  const rest = Object.keys(obj || {}).filter((k) => !known.has(k));
  if (!rest.length) return '';
  const d = el('details', { 'data-field': 'more' }, el('summary', {}, title));
  d.append(fields(Object.fromEntries(rest.map((k) => [k, obj[k]]))));
  return d;
}
/** The Prometheus text of /metrics as sums per family and label filter. */
function parseMetrics(text) {
  const rows = [];
  for (const line of text.split('\n')) {
    const m = /^([a-z_:][a-z0-9_:]*)(?:\{(.*)\})? ([^ ]+)$/i.exec(line);
    if (!m) continue;
    const labels = {};
    for (const l of (m[2] || '').matchAll(/([a-z_]+)="((?:[^"\\]|\\.)*)"/gi)) labels[l[1]] = l[2];
    rows.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return (name, want) => rows.filter((r) => r.name === name && Object.entries(want || {}).every(([k, v]) => r.labels[k] === v)).reduce((a, r) => a + r.value, 0);
}
function renderUpstreams(status) {
  const root = $('#upstreams');
  root.replaceChildren();
  for (const u of status.upstreams || []) {
    const att = u.attestation || {};
    const card = el('article', { class: 'card', 'data-upstream': u.name },
      el('h3', {}, u.name, ' ', badge(u.ready && u.ready.ready ? 'ready' : 'not ready', u.ready && u.ready.ready ? 'ok' : 'bad')),
      el('dl', {},
        el('dt', {}, 'router'), el('dd', {}, u.url),
        el('dt', {}, 'listen'), el('dd', {}, u.listen || '-'),
        el('dt', {}, 'attestation'), el('dd', { 'data-field': 'mode' }, att.mode || 'n/a'),
        u.ready && !u.ready.ready ? el('dt', {}, 'why') : '', u.ready && !u.ready.ready ? el('dd', {}, u.ready.reason || '') : ''));
    const ids = att.identities || [];
    if (ids.length === 0) card.append(el('p', { class: 'muted', 'data-field': 'no-identity' }, 'no verified identity'));
    for (const id of ids) {
      card.append(el('dl', { class: 'identity', 'data-field': 'identity' },
        el('dt', {}, 'evidence'), el('dd', {}, id.kind),
        el('dt', {}, id.kind === 'nitro' ? 'PCR0' : 'measurement'), el('dd', { class: 'hex', 'data-field': 'measurement' }, id.measurement || '-'),
        el('dt', {}, 'workload tag'), el('dd', { class: 'hex', 'data-field': 'tag' }, id.tag || '-'),
        el('dt', {}, 'trust bundle'), el('dd', { 'data-field': 'bundle' }, id.bundleVersion !== undefined ? 'v' + id.bundleVersion + (id.bundleValidUntil ? ' (valid until ' + id.bundleValidUntil + ')' : '') : '-'),
        el('dt', {}, 'TLS key'), el('dd', { class: 'hex' }, id.spkiSha256),
        el('dt', {}, 'verified'), el('dd', {}, id.verifiedAt + ' (' + ago(id.verifiedAt) + ')'),
        el('dt', {}, 'expires'), el('dd', { 'data-field': 'expires' }, id.expiresAt + ' (' + ago(id.expiresAt) + ')')));
      // How far the pin is proven (#13): our nonce signed or not, the TLS channel bound or not.
      const weak = id.freshness !== 'nonce-bound' || id.channel !== 'bound';
      card.append(el('p', { class: weak ? 'err' : 'muted', 'data-field': 'proof' }, id.freshness + '; channel: ' + id.channel));
    }
    if (att.testRoots) card.append(el('p', { class: 'err', 'data-field': 'test-roots' }, 'test roots trusted besides the vendors\' (attestation.test_roots_file): ' + att.testRoots.join(', ')));
    if (att.lastError) card.append(el('p', { class: 'err', 'data-field': 'last-error' }, 'last attestation error: ', el('code', {}, att.lastError.code), ' ', ago(att.lastError.at), el('br'), el('span', { class: 'detail' }, att.lastError.message || '')));
    const sum = state.metrics;
    card.append(el('dl', {},
      el('dt', {}, 'circuit breaker'), el('dd', { 'data-field': 'circuit' }, att.circuit === undefined ? 'n/a' : typeof att.circuit === 'object' ? JSON.stringify(att.circuit) : String(att.circuit)),
      el('dt', {}, 'JWKS fetches'), el('dd', { 'data-field': 'jwks' }, sum ? 'ok ' + sum('tresor_attest_jwks_fetches_total', { upstream: u.name, result: 'ok' }) + ', failed ' + sum('tresor_attest_jwks_fetches_total', { upstream: u.name, result: 'error' }) : '-'),
      el('dt', {}, 'trust bundle fetches'), el('dd', { 'data-field': 'bundle-fetches' }, sum ? 'ok ' + sum('tresor_attest_trust_bundle_fetches_total', { upstream: u.name, result: 'ok' }) + ', failed ' + sum('tresor_attest_trust_bundle_fetches_total', { upstream: u.name, result: 'error' }) : '-')));
    card.append(more(u, UPSTREAM_KNOWN, 'more about this upstream'), more(att, ATTESTATION_KNOWN, 'more about its attestation'));
    const c = u.counters || {};
    card.append(el('p', { class: 'muted' }, 'requests ' + (c.requests ?? 0) + ', errors ' + (c.errors ?? 0) + ', in flight ' + (c.inFlight ?? 0)));
    root.append(card);
  }
  $('#meta').textContent = 'tresor-attest ' + status.version + ', up ' + status.uptimeSeconds + ' s' + (status.shuttingDown ? ', shutting down' : '');
}
const UPSTREAM_KNOWN = new Set(['name', 'url', 'listen', 'apiKeyConfigured', 'localTokenRequired', 'counters', 'ready', 'attestation', 'receipts']);
const ATTESTATION_KNOWN = new Set(['mode', 'ready', 'identities', 'lastError', 'circuit']);
const state = { cursors: [], page: null, samples: [], metrics: null, status: null };
function renderRecent(recent) {
  const counts = recent.counts;
  const tbody = $('#counts tbody');
  tbody.replaceChildren();
  if (!counts) tbody.append(el('tr', {}, el('td', { colspan: 2 }, 'receipts are off')));
  else for (const v of [...VERDICTS, 'pending']) tbody.append(el('tr', {}, el('th', {}, v), el('td', { 'data-verdict-count': v }, counts[v] ?? 0)));
  // Errors grouped by upstream, kind, code and place, with counts; an attestation group shows what was rejected.
  const groups = new Map();
  for (const e of recent.errors || []) {
    const k = [e.upstream, e.kind, e.code, e.where].join('|');
    const g = groups.get(k) || { ...e, count: 0 };
    g.count += 1;
    groups.set(k, g);
  }
  const errs = $('#errors');
  errs.replaceChildren();
  for (const g of groups.values()) {
    const up = ((state.status && state.status.upstreams) || []).find((u) => u.name === g.upstream);
    const last = up && up.attestation && up.attestation.lastError;
    errs.append(el('li', { 'data-error-kind': g.kind, 'data-code': g.code, 'data-count': g.count },
      el('b', {}, g.count + '×'), ' ', el('b', {}, g.upstream), ' ' + g.kind + ' (' + g.where + (g.status ? ', HTTP ' + g.status : '') + '): ', el('code', {}, g.code), ' latest ' + g.at,
      g.kind === 'attestation' && last && last.code === g.code ? el('div', { class: 'detail', 'data-field': 'rejected' }, last.message || '') : ''));
  }
  if (!groups.size) errs.append(el('li', { class: 'muted' }, 'none since start'));
}
function receiptQuery(cursor) {
  const p = new URLSearchParams({ limit: String(PAGE) });
  for (const [k, sel] of [['verdict', '#verdict-filter'], ['route', '#route-filter'], ['upstream', '#upstream-filter'], ['id', '#search']]) {
    const v = $(sel).value.trim();
    if (v) p.set(k, v);
  }
  for (const k of ['from', 'to']) if ($('#' + k).value) p.set(k, $('#' + k).value + ':00Z');
  if (cursor) p.set('cursor', cursor);
  return 'status/receipts?' + p;
}
async function loadReceipts(cursor) {
  const r = await fetch(receiptQuery(cursor), { cache: 'no-store' });
  const body = await r.json();
  if (!r.ok) {
    $('#search-status').textContent = (body.error && body.error.message) || 'HTTP ' + r.status;
    $('#search-status').className = 'err';
    return;
  }
  state.page = body;
  renderReceipts(body);
}
/** A check that was not pass, as tresor-verify audit prints it: name: result CODE (detail). */
function notPassed(c) {
  return c.name + ': ' + c.result + (c.code ? ' ' + c.code : '') + (c.detail ? ' (' + c.detail + ')' : '');
}
function renderReceipts(page) {
  const rows = $('#receipts tbody');
  rows.replaceChildren();
  for (const r of page.receipts) {
    const tr = el('tr', { 'data-verdict': r.verdict, 'data-seq': r.seq, 'data-receipt-id': r.receipt_id || '', tabindex: 0, class: 'row' },
      el('td', {}, String(r.time || '').replace('T', ' ').replace(/\.\d+Z$/, 'Z')),
      el('td', {}, r.upstream),
      el('td', {}, r.route),
      el('td', { class: 'hex', title: r.request_id }, r.receipt_id || '(none)'),
      el('td', {}, badge(r.verdict, verdictClass(r.verdict))),
      el('td', { title: r.detail || '' }, r.code || ''),
      el('td', { class: 'checks' }, ...(r.checks || []).filter((c) => c.result !== 'pass').map((c) => el('div', { 'data-check': c.name }, notPassed(c)))));
    tr.addEventListener('click', () => showDetail(r));
    tr.addEventListener('keydown', (ev) => { if (ev.key === 'Enter') showDetail(r); });
    rows.append(tr);
  }
  if (!page.receipts.length) rows.append(el('tr', {}, el('td', { colspan: 7, class: 'muted' }, 'no receipt in the audit log matches')));
  const n = state.cursors.length + 1;
  $('#search-status').textContent = 'page ' + n + (page.partial ? ' (scan bound reached: go on with older)' : '') + (page.next ? '' : ', the start of the log');
  $('#search-status').className = 'muted';
  $('#search-status').dataset.page = String(n);
  $('#older').disabled = !page.next;
  $('#newer').disabled = state.cursors.length === 0;
}
const SHOWN = new Set(['type', 'seq', 'time', 'prev', 'job', 'upstream', 'request_id', 'receipt_id', 'method', 'route', 'status', 'exchange_at', 'route_requested', 'route_served', 'failover', 'verdict', 'code', 'detail', 'checks', 'digests', 'attestation', 'fetch_attempts']);
function showDetail(r) {
  const d = $('#detail');
  const dg = r.digests || {};
  const digestRow = (which) => el('tr', { 'data-digest': which }, el('th', {}, which), el('td', { class: 'hex' }, (dg[which] && dg[which].computed) || '-'), el('td', { class: 'hex' }, (dg[which] && dg[which].expected) || '-'),
    el('td', {}, dg[which] && dg[which].expected ? (dg[which].expected === dg[which].computed ? badge('match', 'ok') : badge('differ', 'bad')) : ''));
  const checks = el('table', { id: 'detail-checks' }, el('thead', {}, el('tr', {}, el('th', {}, 'check'), el('th', {}, 'result'), el('th', {}, 'code'), el('th', {}, 'detail'))));
  const body = el('tbody');
  for (const c of r.checks || []) body.append(el('tr', { 'data-check': c.name, 'data-result': c.result }, el('td', {}, c.name), el('td', {}, badge(c.result, c.result === 'pass' ? 'ok' : c.result === 'fail' ? 'bad' : 'neutral')), el('td', {}, c.code || ''), el('td', {}, c.detail || '')));
  if (!(r.checks || []).length) body.append(el('tr', {}, el('td', { colspan: 4, class: 'muted' }, 'no checks recorded')));
  checks.append(body);
  d.replaceChildren(
    el('h2', {}, 'Receipt ', el('code', { 'data-field': 'receipt-id' }, r.receipt_id || '(none)'), ' ', badge(r.verdict, verdictClass(r.verdict)), ' ', el('button', { id: 'close-detail', type: 'button' }, 'close')),
    el('dl', {},
      el('dt', {}, 'request id'), el('dd', { 'data-field': 'request-id' }, r.request_id),
      el('dt', {}, 'recorded'), el('dd', {}, r.time + ' (seq ' + r.seq + ')'),
      el('dt', {}, 'exchange'), el('dd', {}, (r.method || '') + ' ' + r.route + ' → HTTP ' + r.status + ' at ' + (r.exchange_at || '')),
      el('dt', {}, 'upstream'), el('dd', {}, r.upstream),
      el('dt', {}, 'route asked'), el('dd', { 'data-field': 'route-requested' }, r.route_requested || '-'),
      el('dt', {}, 'served model'), el('dd', { 'data-field': 'route-served' }, (r.route_served || '-') + (r.failover ? ' (failover)' : '')),
      el('dt', {}, 'fetch attempts'), el('dd', { 'data-field': 'fetch-attempts' }, r.fetch_attempts ?? '-'),
      el('dt', {}, 'verdict'), el('dd', { 'data-field': 'verdict' }, r.verdict + (r.code ? ' ' + r.code : '') + (r.detail ? ': ' + r.detail : ''))),
    el('h3', {}, 'Checks'), checks,
    el('h3', {}, 'Digests'), el('table', { id: 'detail-digests' }, el('thead', {}, el('tr', {}, el('th', {}), el('th', {}, 'computed here'), el('th', {}, 'in the receipt'), el('th', {}))), el('tbody', {}, digestRow('request'), digestRow('response'))),
    el('h3', {}, 'Pin it was made under'), r.attestation ? fields(r.attestation) : el('p', { class: 'muted', 'data-field': 'no-pin' }, 'no attestation recorded with this receipt'),
    more(r, SHOWN, 'every other field of the record'));
  d.hidden = false;
  d.dataset.seq = String(r.seq);
  $('#close-detail').addEventListener('click', () => { d.hidden = true; });
}
/** Rates between refreshes, as small SVG line charts (drawn here: no library, no CDN). */
function sample(sum) {
  const now = Date.now();
  const s = { t: now, requests: sum('tresor_attest_http_requests_total'), attFailed: sum('tresor_attest_attestations_total', { result: 'failed' }) };
  for (const v of VERDICTS) s[v] = sum('tresor_attest_receipts_total', { verdict: v });
  state.samples.push(s);
  if (state.samples.length > 61) state.samples.shift();
}
const CHARTS = [
  ['requests', 'requests/s', (a, b) => b.requests - a.requests],
  ['verified', 'receipts verified/s', (a, b) => b.verified - a.verified],
  ['not-verified', 'receipts not verified/s', (a, b) => VERDICTS.filter((v) => v !== 'verified' && v !== 'opted_out').reduce((x, v) => x + b[v] - a[v], 0)],
  ['attestation-failures', 'attestation failures/s', (a, b) => b.attFailed - a.attFailed],
];
function renderCharts() {
  const root = $('#charts');
  root.replaceChildren();
  const S = state.samples;
  for (const [key, label, delta] of CHARTS) {
    const rates = [];
    for (let i = 1; i < S.length; i++) rates.push(Math.max(0, delta(S[i - 1], S[i])) / Math.max(0.001, (S[i].t - S[i - 1].t) / 1000));
    const W = 240, H = 48, max = Math.max(...rates, 0.001);
    const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
    svg.setAttribute('viewBox', '0 0 ' + W + ' ' + H);
    svg.setAttribute('width', String(W));
    svg.setAttribute('height', String(H));
    svg.setAttribute('role', 'img');
    svg.setAttribute('aria-label', label);
    const line = document.createElementNS('http://www.w3.org/2000/svg', 'polyline');
    line.setAttribute('points', rates.map((r, i) => (rates.length < 2 ? 0 : (i * W) / (rates.length - 1)).toFixed(1) + ',' + (H - 2 - (r / max) * (H - 4)).toFixed(1)).join(' '));
    line.setAttribute('fill', 'none');
    line.setAttribute('stroke', key === 'requests' || key === 'verified' ? '#1a7f37' : '#cf222e');
    line.setAttribute('stroke-width', '1.5');
    svg.append(line);
    const last = rates.length ? rates[rates.length - 1] : 0;
    root.append(el('figure', { class: 'chart', 'data-chart': key, 'data-points': rates.length, 'data-last': last.toFixed(3) }, svg, el('figcaption', {}, label + ': ' + last.toFixed(2) + ' (max ' + (rates.length ? max.toFixed(2) : '0') + ')')));
  }
}
function fillUpstreamFilter(status) {
  const sel = $('#upstream-filter');
  const names = (status.upstreams || []).map((u) => u.name);
  if (sel.options.length - 1 === names.length) return;
  sel.replaceChildren(el('option', { value: '' }, 'all upstreams'), ...names.map((n) => el('option', { value: n }, n)));
}
function renderAudit(status) {
  const a = status.audit;
  $('#audit').replaceChildren(a ? fields(a) : el('p', { class: 'muted' }, 'see the receipts below; the daemon reports no audit-log health here'));
}
async function load() {
  const verdict = $('#verdict-filter').value;
  try {
    const q = 'status/recent?limit=1' + (verdict ? '&verdict=' + encodeURIComponent(verdict) : '');
    const [s, r, m] = await Promise.all([fetch('status', { cache: 'no-store' }), fetch(q, { cache: 'no-store' }), fetch('metrics', { cache: 'no-store' })]);
    if (!s.ok || !r.ok) throw new Error('HTTP ' + (s.ok ? r.status : s.status));
    state.status = await s.json();
    if (m.ok) {
      state.metrics = parseMetrics(await m.text());
      sample(state.metrics);
    }
    fillUpstreamFilter(state.status);
    renderUpstreams(state.status);
    renderAudit(state.status);
    renderRecent(await r.json());
    renderCharts();
    // The first page follows the log as it grows; an older page stays where the operator put it.
    if (state.cursors.length === 0) await loadReceipts(undefined);
    $('#updated').textContent = 'updated ' + new Date().toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
    $('#updated').className = 'muted';
    document.body.dataset.loaded = String(Number(document.body.dataset.loaded || 0) + 1);
  } catch (e) {
    $('#updated').textContent = 'cannot reach the daemon: ' + e.message;
    $('#updated').className = 'err';
  }
}
function search() {
  state.cursors = [];
  loadReceipts(undefined);
}
let timer;
function schedule() { clearInterval(timer); if (!$('#pause').checked) timer = setInterval(load, REFRESH_MS); }
for (const id of ['#verdict-filter', '#upstream-filter', '#route-filter', '#from', '#to']) $(id).addEventListener('change', search);
$('#search-form').addEventListener('submit', (ev) => { ev.preventDefault(); search(); });
$('#older').addEventListener('click', () => {
  if (!state.page || !state.page.next) return;
  state.cursors.push(state.page.next);
  loadReceipts(state.page.next);
});
$('#newer').addEventListener('click', () => {
  state.cursors.pop();
  loadReceipts(state.cursors[state.cursors.length - 1]);
});
$('#pause').addEventListener('change', schedule);
load();
schedule();
`;

const STYLE = `
:root { color-scheme: light dark; --ok: #1a7f37; --bad: #cf222e; --muted: #6e7781; --line: #d0d7de; }
body { font: 14px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 1200px; padding: 1rem 1.5rem; }
header { display: flex; gap: 1rem; align-items: baseline; flex-wrap: wrap; border-bottom: 1px solid var(--line); }
h1 { font-size: 1.3rem; margin: .4rem 0; } h2 { font-size: 1.05rem; margin: 1.2rem 0 .4rem; } h3 { margin: 0 0 .4rem; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(420px, 1fr)); gap: 1rem; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: .8rem 1rem; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: .1rem .8rem; margin: .3rem 0; }
dt { color: var(--muted); } dd { margin: 0; overflow-wrap: anywhere; }
.identity { border-top: 1px dashed var(--line); padding-top: .3rem; }
.hex { font-family: ui-monospace, monospace; font-size: 12px; overflow-wrap: anywhere; }
.badge { display: inline-block; padding: 0 .45rem; border-radius: 999px; font-size: 12px; color: #fff; background: var(--muted); }
.badge.ok { background: var(--ok); } .badge.bad { background: var(--bad); }
.checks { font-size: 12px; color: var(--muted); } .muted { color: var(--muted); } .err { color: var(--bad); }
table { border-collapse: collapse; width: 100%; } th, td { text-align: left; padding: .2rem .5rem; border-bottom: 1px solid var(--line); vertical-align: top; }
#counts { width: auto; } ul { padding-left: 1.2rem; }
.charts { display: flex; flex-wrap: wrap; gap: 1rem; } .chart { margin: 0; border: 1px solid var(--line); border-radius: 6px; padding: .3rem .5rem; }
figcaption { font-size: 12px; color: var(--muted); } .filters { display: flex; flex-wrap: wrap; gap: .5rem; align-items: center; }
tr.row { cursor: pointer; } tr.row:hover, tr.row:focus { background: rgba(127, 127, 127, .12); } #detail { margin-top: 1rem; }
.detail { font-size: 12px; color: var(--muted); overflow-wrap: anywhere; } details { margin-top: .3rem; } .badge.neutral { background: var(--muted); }
`;

export const STATUS_PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>tresor-attest status</title>
<style>${STYLE}</style>
</head>
<body>
<header><h1>tresor-attest</h1><span id="meta" class="muted"></span><span id="updated" class="muted">loading…</span>
<label class="muted"><input type="checkbox" id="pause"> pause auto-refresh</label></header>
<h2>Upstreams</h2>
<section id="upstreams" class="cards"></section>
<h2>Rates</h2>
<section id="charts" class="charts"></section>
<h2>Receipts since start</h2>
<table id="counts"><tbody></tbody></table>
<h2>Audit log</h2>
<section id="audit"></section>
<h2>Receipts in the audit log</h2>
<form id="search-form" class="filters">
<input id="search" type="search" placeholder="receipt id or request id" aria-label="search by receipt id or request id" size="40">
<select id="verdict-filter" aria-label="filter by verdict">
<option value="">all verdicts</option><option>verified</option><option>failed</option><option>missing</option><option>opted_out</option><option>unverifiable</option>
</select>
<select id="upstream-filter" aria-label="filter by upstream"><option value="">all upstreams</option></select>
<select id="route-filter" aria-label="filter by route"><option value="">all routes</option><option>/v1/chat/completions</option><option>/v1/completions</option><option>/v1/embeddings</option><option>/v1/audio/transcriptions</option><option>/v1/responses</option></select>
<label>from (UTC) <input id="from" type="datetime-local"></label>
<label>to (UTC) <input id="to" type="datetime-local"></label>
<button type="submit">search</button>
</form>
<p><button id="newer" type="button" disabled>newer</button> <button id="older" type="button" disabled>older</button> <span id="search-status" class="muted"></span></p>
<table id="receipts"><thead><tr><th>time (UTC)</th><th>upstream</th><th>route</th><th>receipt id</th><th>verdict</th><th>code</th><th>checks not passed</th></tr></thead><tbody></tbody></table>
<section id="detail" class="card" hidden></section>
<h2>Errors since start (grouped)</h2>
<ul id="errors"></ul>
<script>${SCRIPT}</script>
</body>
</html>
`;

const SCRIPT_HASH = createHash('sha256').update(SCRIPT).digest('base64');
const STYLE_HASH = createHash('sha256').update(STYLE).digest('base64');

/** Nothing but this page's own script and style, and fetches to its own origin. */
export const STATUS_PAGE_CSP = [
  "default-src 'none'",
  `script-src 'sha256-${SCRIPT_HASH}'`,
  `style-src 'sha256-${STYLE_HASH}'`,
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

export function sendStatusPage(res: ServerResponse, head: boolean): void {
  const body = Buffer.from(STATUS_PAGE_HTML, 'utf8');
  res.writeHead(200, {
    'content-type': 'text/html; charset=utf-8',
    'content-length': body.length,
    'cache-control': 'no-store',
    'content-security-policy': STATUS_PAGE_CSP,
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
  });
  res.end(head ? undefined : body);
}
