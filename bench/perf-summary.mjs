// node bench/perf-summary.mjs DIR/<contender>/perf-PID.data [--from S] [--to S] [--per N] [--js]
// Summarises a `perf record -g` of a Node contender (BENCH_PERF_DIR) by thread and by what ran:
// the main thread (tid = pid), V8's platform workers (GC helpers, concurrent compilers), the
// libuv pool, other threads; and, within each, GC, JIT compilation, kernel (by syscall family),
// crypto, JavaScript and the rest of the native code. --from/--to keep the samples from S seconds
// after the first one (e.g. the later rounds only); --per N divides the sampled time (1 ms a
// sample at -F 999) by N requests; --js also lists the main thread's samples by the nearest
// JavaScript frame's module (dist/…, node_modules/…, node:…).
import { execFileSync } from 'node:child_process';
import { basename } from 'node:path';
import { parseArgs } from 'node:util';

const { values: o, positionals } = parseArgs({ allowPositionals: true, options: { from: { type: 'string' }, to: { type: 'string' }, per: { type: 'string' }, js: { type: 'boolean' } } });
const file = positionals[0];
const pid = Number(/perf-(\d+)\.data$/.exec(basename(file))?.[1]);
const script = execFileSync('perf', ['script', '-i', file, '-F', 'tid,time,ip,sym,dso'], { maxBuffer: 1 << 30, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });

const role = (tid, all) => (tid === pid ? 'main' : /PlatformWorkerThread/.test(all) ? 'V8 workers' : /uv__|worker \(|libuv/.test(all) || /fdatasync|ext4_sync/.test(all) ? 'libuv pool' : 'other threads');
function category(frames, all, r) {
  const leaf = frames[0] ?? '';
  if (/wasm/i.test(all)) return 'wasm compile (undici llhttp)';
  if (r !== 'main' && /compiler::|maglev|Maglev|Baseline|Compil/.test(all)) return 'JIT compile';
  if (/Heap::|Scavenger|MarkCompact|Sweeper|ConcurrentMarking|Marking|MemoryAllocator|Evacuat|GCTracer|MinorM/.test(all)) return 'GC';
  if (/\[kernel/.test(leaf) || /kallsyms/.test(leaf)) {
    if (/fdatasync|ext4_sync|jbd2|blk_|virtio/.test(all)) return 'kernel: fdatasync';
    if (/tcp_|inet_|sock_|skb|__sys_sendto|sendmsg|recvmsg|readv|writev|ksys_write|ksys_read|vfs_write|vfs_read|pipe_/.test(all)) return 'kernel: read/write/socket';
    if (/futex/.test(all)) return 'kernel: futex (thread hand-offs)';
    if (/epoll/.test(all)) return 'kernel: epoll';
    if (/stat|openat|rename|unlink|statfs/.test(all)) return 'kernel: stat/open/rename';
    if (/munmap|mmap|page_fault|exc_page|mprotect|madvise/.test(all)) return 'kernel: memory';
    return 'kernel: other (scheduler, interrupts)';
  }
  if (/ecp_nistz|bn_mul|BN_|ecdsa|EC_|sha256|SHA256|aes|gcm|ossl_|OPENSSL|ssl3_|SSL_|tls1_|EVP_|libcrypto|libssl/.test(leaf)) return 'crypto, TLS (native)';
  if (/JS:|Builtins_|Interpreter|JIT\] tid/.test(leaf)) return 'JavaScript + V8 builtins';
  if (/libc\.so|malloc|memmove|memcpy|memset|free|_int_/.test(leaf)) return 'libc (malloc, memcpy)';
  return 'native other (V8 runtime, Node bindings)';
}
const jsModule = (frames) => {
  for (const f of frames) {
    const m = /JS:\S*\s+(\S+)/.exec(f) ?? /(file:\/\/\S+|\bnode:(?!:)\S+)/.exec(f);
    if (!m) continue;
    const p = m[1].replace(/^file:\/\//, '');
    const d = /\/(dist\/[^:]+)/.exec(p) ?? /\/node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(p);
    return d ? d[1] : p.replace(/:\d+(:\d+)?$/, '');
  }
  return '(no JavaScript frame)';
};

const byRole = new Map();
const byJs = new Map();
let t0;
let kept = 0;
for (const block of script.split('\n\n')) {
  const lines = block.split('\n').filter(Boolean);
  if (!lines.length) continue;
  const [tidS, timeS] = lines[0].trim().split(/\s+/);
  const t = Number(timeS.replace(/:$/, ''));
  t0 ??= t;
  if ((o.from && t - t0 < Number(o.from)) || (o.to && t - t0 > Number(o.to))) continue;
  kept++;
  const frames = lines.slice(1).map((l) => l.trim().replace(/^[0-9a-f]+ /, ''));
  const all = frames.join(' | ');
  const r = role(Number(tidS), all);
  const c = category(frames, all, r);
  const m = byRole.get(r) ?? new Map();
  m.set(c, (m.get(c) ?? 0) + 1);
  byRole.set(r, m);
  if (r === 'main' && o.js) {
    const k = jsModule(frames);
    byJs.set(k, (byJs.get(k) ?? 0) + 1);
  }
}
const per = o.per ? Number(o.per) : undefined;
const fmt = (n) => (per ? `${((n * 1e6) / 999 / per).toFixed(1).padStart(8)} µs/req` : `${String(n).padStart(7)} samples`);
console.log(`${file}: ${kept} samples (${(kept / 999).toFixed(2)} s of CPU at 999 Hz)`);
for (const [r, m] of [...byRole].sort((a, b) => sum(b[1]) - sum(a[1]))) {
  console.log(`\n${r}: ${fmt(sum(m))} (${((100 * sum(m)) / kept).toFixed(1)} %)`);
  for (const [c, n] of [...m].sort((a, b) => b[1] - a[1])) console.log(`  ${fmt(n)}  ${c}`);
}
if (o.js) {
  console.log('\nmain thread by the nearest JavaScript frame:');
  for (const [k, n] of [...byJs].sort((a, b) => b[1] - a[1]).slice(0, 30)) console.log(`  ${fmt(n)}  ${k}`);
}
function sum(m) {
  let s = 0;
  for (const n of m.values()) s += n;
  return s;
}
