// The upload path counted, contender by contender, outside the bench's noise: the bench's streamed
// multipart transcription upload (bench/load.mjs uploadOnce, 100 MB) through the bare passthrough and
// the daemon (HTTP/1.1 to the simulator, its default), in turn, several rounds (#20, branch i20v).
// Per MB of upload (firm counts): read- and write-family system calls and the bytes they moved
// (/proc/PID/io), of the contender and of the simulator; with --strace (strace -f on the contender
// during each upload): reads and writes per socket (app side, upstream side) with their mean size,
// epoll_wait calls (event-loop turns) and epoll_ctl calls (a socket's reading stopped or started).
// Clock figures (CPU ms per MB by thread, the simulator's and this client's, MB/s, how busy the
// contender's main thread was) are as noisy as the machine. --perf DIR: `perf record -g` on the
// contender during each upload (summarise with bench/perf-summary.mjs; BENCH_NODE_ARGS=
// '--perf-basic-prof-only-functions' names the JavaScript frames).
// Contender `passthrough-digest`: the passthrough plus the request digest alone (bench/request-digest-preload.mjs).
// Usage: node bench/upload-watch.mjs [--rounds 3] [--mb 100] [--contenders passthrough,tresor-attest]
//        [--strace] [--perf DIR] [--preload N]   (N chat completions at c16 first, as the full run's JSON scenarios)
// BENCH_BASELINE_ROOT=DIR adds `baseline-tresor-attest` (the daemon built in DIR), as in bench/run.mjs;
// BENCH_KEEP_DIR=1 keeps the contenders' logs (e.g. with BENCH_NODE_ARGS='--trace-gc').
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, readFileSync, readlinkSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { CONTENDERS, startSim } from './contenders.mjs';
import { chatOnce, clientFor, runJson, uploadOnce } from './load.mjs';
import { threadDelta, threadTimes } from './procfs.mjs';

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    mb: { type: 'string', default: '100' },
    contenders: { type: 'string', default: `passthrough,tresor-attest${process.env.BENCH_BASELINE_ROOT ? ',baseline-tresor-attest' : ''}` },
    strace: { type: 'boolean', default: false },
    perf: { type: 'string' },
    preload: { type: 'string', default: '0' },
  },
});
const MB = 1024 * 1024;
if (args.perf) mkdirSync(args.perf, { recursive: true });
const bytes = Number(args.mb) * MB;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** /proc/PID/io: system calls and bytes, all threads. */
function io(pid) {
  const text = readFileSync(`/proc/${pid}/io`, 'utf8');
  const n = (k) => Number(new RegExp(`^${k}: (\\d+)$`, 'm').exec(text)?.[1] ?? NaN);
  return { syscr: n('syscr'), syscw: n('syscw'), rchar: n('rchar'), wchar: n('wchar') };
}
const ioDelta = (a, b) => Object.fromEntries(Object.keys(a).map((k) => [k, b[k] - a[k]]));

/** The socket inode behind each fd of `pid`, and the local port of each TCP socket inode. */
function fdPorts(pid) {
  const inodePort = new Map();
  for (const f of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of readFileSync(f, 'utf8').split('\n').slice(1)) {
      const c = line.trim().split(/\s+/);
      if (c.length < 10) continue;
      inodePort.set(c[9], { local: parseInt(c[1].split(':')[1], 16), remote: parseInt(c[2].split(':')[1], 16) });
    }
  }
  const out = new Map();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m && inodePort.has(m[1])) out.set(Number(fd), inodePort.get(m[1]));
    } catch {
      /* closed meanwhile */
    }
  }
  return out;
}

/** strace -f on `pid` into `file`: the data-moving calls and epoll_wait, no data. */
async function straceOn(pid, file) {
  const p = spawn('strace', ['-f', '-qq', '-s', '0', '-e', 'trace=read,write,readv,writev,recvfrom,sendto,recvmsg,sendmsg,epoll_wait,epoll_pwait,epoll_ctl', '-o', file, '-p', String(pid)], { stdio: ['ignore', 'ignore', 'pipe'] });
  const exited = new Promise((r) => p.once('exit', r));
  await sleep(500);
  return { stop: () => (p.kill('SIGINT'), exited) };
}

/** perf record (all threads, call graphs) on `pid` into `file` while one upload runs (run the contenders with BENCH_PERF_DIR for JS frame names). */
async function perfOn(pid, file) {
  const p = spawn('perf', ['record', '-F', '1999', '-g', '-e', 'cpu-clock', '-p', String(pid), '-o', file], { stdio: ['ignore', 'ignore', 'pipe'] });
  const exited = new Promise((r) => p.once('exit', r));
  await sleep(300);
  return { stop: () => (p.kill('SIGINT'), exited) };
}

/** Per fd: calls and bytes of reads and writes; epoll_wait calls (each one event-loop turn of some thread), epoll_ctl calls (a socket's reading stopped or started). */
function straceSummary(file) {
  const fds = new Map();
  let epoll = 0;
  let epollCtl = 0;
  const at = (fd) => fds.get(fd) ?? (fds.set(fd, { reads: 0, readBytes: 0, writes: 0, writeBytes: 0, eagain: 0 }), fds.get(fd));
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const m = /^\d+\s+(\w+)\((\d+),.*\)\s+=\s+(-?\d+)/.exec(line);
    if (!m) continue;
    const [, call, fdText, retText] = m;
    if (call === 'epoll_ctl') {
      epollCtl++;
      continue;
    }
    if (call.startsWith('epoll')) {
      epoll++;
      continue;
    }
    const fd = at(Number(fdText));
    const ret = Number(retText);
    const isRead = /^(read|readv|recv)/.test(call);
    if (ret < 0) fd.eagain++;
    else if (isRead) (fd.reads++, (fd.readBytes += ret));
    else (fd.writes++, (fd.writeBytes += ret));
  }
  return { fds, epoll, epollCtl };
}

/** `passthrough-digest`: bench/passthrough.mjs with bench/request-digest-preload.mjs (the passthrough plus the request digest). */
const passthroughDigest = {
  name: 'passthrough-digest',
  available: () => ({ ok: true }),
  async start(sim) {
    const root = new URL('..', import.meta.url).pathname;
    const child = spawn(process.execPath, ['--import', join(root, 'bench/request-digest-preload.mjs'), join(root, 'bench/passthrough.mjs'), sim.url, sim.caFile], { stdio: ['ignore', 'pipe', 'inherit'] });
    const [line] = await once(child.stdout, 'data');
    const origin = /listening (http:\/\/\S+)/.exec(String(line))?.[1];
    if (!origin) throw new Error(`passthrough-digest did not start: ${line}`);
    const exited = once(child, 'exit');
    return { origin, pid: child.pid, stop: () => (child.kill('SIGTERM'), exited) };
  },
};

const sim = await (async () => {
  const dir = mkdtempSync(join(os.tmpdir(), 'tresor-upload-watch-'));
  const s = await startSim(dir, 5);
  return { ...s, dir };
})();
const simPort = Number(new URL(sim.url).port);
const wanted = args.contenders.split(',');
const targets = [];
try {
  for (const c of [...CONTENDERS, passthroughDigest].filter((c) => wanted.includes(c.name))) {
    c.available(sim, sim.dir);
    const t = await c.start(sim, sim.dir);
    const client = clientFor(t, 1);
    for (let i = 0; i < Number(args.preload); i += 500) await runJson(client, { count: Math.min(500, Number(args.preload) - i), concurrency: 16, maxMs: 60_000, once: chatOnce });
    await uploadOnce(client, 8 * MB); // warm: JIT, the upstream connection
    targets.push({ name: c.name, t, client, rows: [] });
  }
  for (let round = 0; round < Number(args.rounds); round++) {
    for (const x of targets) {
      const { pid } = x.t;
      const tr = args.strace ? await straceOn(pid, join(sim.dir, `strace-${x.name}-${round}`)) : undefined;
      const pf = args.perf ? await perfOn(pid, join(args.perf, `${x.name}-${round}-perf-${pid}.data`)) : undefined;
      const [th0, io0, sio0, s0, c0] = [threadTimes(pid), io(pid), io(sim.pid), threadTimes(sim.pid), process.cpuUsage()];
      const ms = await uploadOnce(x.client, bytes);
      await x.t.settle?.();
      const [th1, io1, sio1, s1, c1] = [threadTimes(pid), io(pid), io(sim.pid), threadTimes(sim.pid), process.cpuUsage(c0)];
      const ports = tr ? fdPorts(pid) : undefined;
      await tr?.stop();
      await pf?.stop();
      const d = threadDelta(pid, th0, th1);
      const sd = threadDelta(sim.pid, s0, s1);
      const row = { ms, mbPerSec: bytes / MB / (ms / 1000), cpu: d, io: ioDelta(io0, io1), clientUs: c1.user + c1.system, simCpu: sd, simIo: ioDelta(sio0, sio1) };
      if (tr) {
        const s = straceSummary(join(sim.dir, `strace-${x.name}-${round}`));
        row.strace = { epoll: s.epoll, epollCtl: s.epollCtl, fds: [...s.fds].filter(([, v]) => v.readBytes + v.writeBytes > MB).map(([fd, v]) => ({ fd, side: ports?.get(fd)?.remote === simPort ? 'upstream' : 'downstream', ...v })) };
      }
      x.rows.push(row);
    }
  }
} finally {
  for (const x of targets) {
    await x.client.close();
    await x.t.stop();
  }
  await sim.stop();
}

const per = (v) => (v / Number(args.mb)).toFixed(1);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
for (const x of targets) {
  const m = (f) => median(x.rows.map(f));
  process.stdout.write(`\n${x.name}: ${args.mb} MB upload, medians of ${x.rows.length} rounds, per MB\n`);
  process.stdout.write(`  clock (noisy): ${m((r) => r.mbPerSec).toFixed(0)} MB/s; own CPU ${((m((r) => r.cpu.mainUs + r.cpu.othersUs)) / 1000 / Number(args.mb)).toFixed(2)} ms/MB (main ${(m((r) => r.cpu.mainUs) / 1000 / Number(args.mb)).toFixed(2)}, of it kernel ${(m((r) => r.cpu.mainSysUs) / 1000 / Number(args.mb)).toFixed(2)}; other threads ${(m((r) => r.cpu.othersUs) / 1000 / Number(args.mb)).toFixed(2)}); simulator ${(m((r) => r.simCpu.mainUs + r.simCpu.othersUs) / 1000 / Number(args.mb)).toFixed(2)} ms/MB; client (this process) ${(m((r) => r.clientUs) / 1000 / Number(args.mb)).toFixed(2)} ms/MB; wall ${(m((r) => r.ms) / Number(args.mb)).toFixed(2)} ms/MB, the contender's main thread busy ${(100 * m((r) => r.cpu.mainUs / 1000 / r.ms)).toFixed(0)} % of it\n`);
  process.stdout.write(`  counted: reads ${per(m((r) => r.io.syscr))}, writes ${per(m((r) => r.io.syscw))} calls/MB; bytes read ${(m((r) => r.io.rchar) / bytes).toFixed(3)}, written ${(m((r) => r.io.wchar) / bytes).toFixed(3)} per byte uploaded; simulator: reads ${per(m((r) => r.simIo.syscr))}, writes ${per(m((r) => r.simIo.syscw))} calls/MB\n`);
  process.stdout.write(`  CPU by thread (µs/MB, tid − pid, per round): ${x.rows.map((r) => JSON.stringify(Object.fromEntries(Object.entries(r.cpu.byTid).map(([k, v]) => [k, Math.round(v / Number(args.mb))])))).join(' ')}\n`);
  if (args.strace) {
    for (const r of x.rows) {
      const s = r.strace;
      process.stdout.write(`  strace: epoll_wait ${per(s.epoll)}/MB, epoll_ctl ${per(s.epollCtl)}/MB; ${s.fds.map((f) => `${f.side} fd ${f.fd}: ${per(f.reads)} reads/MB (${f.reads ? (f.readBytes / f.reads / 1024).toFixed(1) : '-'} KiB each), ${per(f.writes)} writes/MB (${f.writes ? (f.writeBytes / f.writes / 1024).toFixed(1) : '-'} KiB each), ${per(f.eagain)} EAGAIN/MB`).join('; ')}\n`);
    }
  }
}
if (process.env.BENCH_KEEP_DIR) process.stdout.write(`\nkept ${sim.dir} (contender logs)\n`);
else rmSync(sim.dir, { recursive: true, force: true });
