import { createHash } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { FINAL_VERDICTS } from '../receipts/record.js';

/**
 * The local status page (`GET /`): one self-contained HTML document, inline CSS and script, no
 * build step, no CDN, works offline. It reads `/status` and `/status/recent` (same origin, same
 * access rules) every few seconds and renders only what those return: identities, expiry,
 * verdict counts, recent receipts and errors. Data is inserted as text nodes only (never as
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
    if (att.lastError) card.append(el('p', { class: 'err', 'data-field': 'last-error' }, 'last attestation error: ', el('code', {}, att.lastError.code), ' ', ago(att.lastError.at)));
    const c = u.counters || {};
    card.append(el('p', { class: 'muted' }, 'requests ' + (c.requests ?? 0) + ', errors ' + (c.errors ?? 0) + ', in flight ' + (c.inFlight ?? 0)));
    root.append(card);
  }
  $('#meta').textContent = 'tresor-attest ' + status.version + ', up ' + status.uptimeSeconds + ' s' + (status.shuttingDown ? ', shutting down' : '');
}
function renderRecent(recent) {
  const counts = recent.counts;
  const tbody = $('#counts tbody');
  tbody.replaceChildren();
  if (!counts) tbody.append(el('tr', {}, el('td', { colspan: 2 }, 'receipts are off')));
  else for (const v of [...VERDICTS, 'pending']) tbody.append(el('tr', {}, el('th', {}, v), el('td', { 'data-verdict-count': v }, counts[v] ?? 0)));
  const rows = $('#receipts tbody');
  rows.replaceChildren();
  for (const r of recent.receipts || []) {
    rows.append(el('tr', { 'data-verdict': r.verdict, 'data-seq': r.seq },
      el('td', {}, r.time.replace('T', ' ').replace(/\.\d+Z$/, 'Z')),
      el('td', {}, r.upstream),
      el('td', {}, r.route),
      el('td', { class: 'hex', title: r.request_id }, r.receipt_id || '(none)'),
      el('td', {}, badge(r.verdict, r.verdict === 'verified' ? 'ok' : r.verdict === 'opted_out' ? 'neutral' : 'bad')),
      el('td', { title: r.detail || '' }, r.code || ''),
      el('td', { class: 'checks' }, ...(r.checks_not_passed || []).map((c) => el('div', { 'data-check': c.split(':')[0] }, c)))));
  }
  if (!(recent.receipts || []).length) rows.append(el('tr', {}, el('td', { colspan: 7, class: 'muted' }, 'no receipts recorded' + (recent.filter ? ' with verdict ' + recent.filter : ''))));
  const errs = $('#errors');
  errs.replaceChildren();
  for (const e of recent.errors || []) errs.append(el('li', { 'data-error-kind': e.kind }, e.at + ' ', el('b', {}, e.upstream), ' ' + e.kind + ' (' + e.where + (e.status ? ', HTTP ' + e.status : '') + '): ', el('code', {}, e.code)));
  if (!(recent.errors || []).length) errs.append(el('li', { class: 'muted' }, 'none since start'));
}
async function load() {
  const verdict = $('#verdict-filter').value;
  try {
    const q = 'status/recent?limit=50' + (verdict ? '&verdict=' + encodeURIComponent(verdict) : '');
    const [s, r] = await Promise.all([fetch('status', { cache: 'no-store' }), fetch(q, { cache: 'no-store' })]);
    if (!s.ok || !r.ok) throw new Error('HTTP ' + (s.ok ? r.status : s.status));
    renderUpstreams(await s.json());
    renderRecent(await r.json());
    $('#updated').textContent = 'updated ' + new Date().toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
    $('#updated').className = 'muted';
    document.body.dataset.loaded = String(Number(document.body.dataset.loaded || 0) + 1);
  } catch (e) {
    $('#updated').textContent = 'cannot reach the daemon: ' + e.message;
    $('#updated').className = 'err';
  }
}
let timer;
function schedule() { clearInterval(timer); if (!$('#pause').checked) timer = setInterval(load, REFRESH_MS); }
$('#verdict-filter').addEventListener('change', load);
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
<h2>Receipts since start</h2>
<table id="counts"><tbody></tbody></table>
<h2>Latest receipts <select id="verdict-filter" aria-label="filter by verdict">
<option value="">all verdicts</option><option>verified</option><option>failed</option><option>missing</option><option>opted_out</option><option>unverifiable</option>
</select></h2>
<table id="receipts"><thead><tr><th>time (UTC)</th><th>upstream</th><th>route</th><th>receipt id</th><th>verdict</th><th>code</th><th>checks not passed</th></tr></thead><tbody></tbody></table>
<h2>Latest errors</h2>
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
