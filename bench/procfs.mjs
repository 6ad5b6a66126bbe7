// CPU time and memory of another process, read from procfs (Linux only).
import { readdirSync, readFileSync } from 'node:fs';

const TICK_US = 1e6 / 100; // USER_HZ is 100 on Linux

/**
 * CPU time of `pid` in µs: the sum over its threads of /proc/PID/task/TID/schedstat (ns on CPU,
 * user + system), or, where the kernel has no schedstat, utime + stime from /proc/PID/stat
 * (10 ms ticks). Both count every thread (GC, libuv pool); schedstat misses threads that exited.
 */
export function cpuMicros(pid) {
  try {
    let ns = 0;
    for (const tid of readdirSync(`/proc/${pid}/task`)) ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    if (Number.isFinite(ns) && ns > 0) return ns / 1000;
  } catch {
    /* no schedstat: fall back to ticks */
  }
  return statCpuMicros(pid);
}

/**
 * Per thread of `pid`: ns on CPU (schedstat) and its utime/stime ticks (user vs kernel), keyed by
 * tid. Node 20 does not name its threads, so they are told apart by creation order: the main thread
 * (tid = pid), then V8's platform workers (GC helpers, compiler), then the libuv pool.
 */
export function threadTimes(pid) {
  const out = new Map();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const ns = Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.set(Number(tid), { ns, utime: Number(f[11]), stime: Number(f[12]) });
    } catch {
      /* the thread exited */
    }
  }
  return out;
}

/**
 * CPU per thread between two `threadTimes` samples, in µs: `main` (the event loop's thread) and
 * `others` (every other thread), each split into user and kernel time by its tick counts.
 */
export function threadDelta(pid, a, b) {
  const acc = { mainUs: 0, mainSysUs: 0, othersUs: 0, othersSysUs: 0, byTid: {} };
  for (const [tid, t1] of b) {
    const t0 = a.get(tid) ?? { ns: 0, utime: 0, stime: 0 };
    const us = (t1.ns - t0.ns) / 1000;
    if (us <= 0) continue;
    const ticks = t1.utime - t0.utime + (t1.stime - t0.stime);
    const sysUs = ticks > 0 ? (us * (t1.stime - t0.stime)) / ticks : 0;
    if (tid === pid) {
      acc.mainUs += us;
      acc.mainSysUs += sysUs;
    } else {
      acc.othersUs += us;
      acc.othersSysUs += sysUs;
    }
    acc.byTid[tid - pid] = Math.round(us);
  }
  return acc;
}

/** read(2)-family and write(2)-family system calls `pid` made so far (all threads; /proc/PID/io syscr, syscw). */
export function ioCalls(pid) {
  const io = readFileSync(`/proc/${pid}/io`, 'utf8');
  const n = (k) => Number(new RegExp(`^${k}: (\\d+)$`, 'm').exec(io)?.[1] ?? NaN);
  return { reads: n('syscr'), writes: n('syscw') };
}

/** utime + stime of `pid` (all its threads, dead ones included) in µs; 10 ms resolution. */
export function statCpuMicros(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may contain spaces) start after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * TICK_US; // fields 14 and 15 of stat(5)
}

/**
 * The whole machine's CPU time from the first line of /proc/stat (ticks, all CPUs): busy (user,
 * nice, system, irq, softirq) and total (steal, the time the hypervisor gave other guests, counts
 * in the total only).
 */
function machineTicks() {
  const f = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0].trim().split(/\s+/).slice(1, 9).map(Number);
  const [user, nice, system, idle, iowait, irq, softirq, steal] = f;
  return { busy: user + nice + system + irq + softirq, total: user + nice + system + idle + iowait + irq + softirq + steal };
}

/** Share of the machine's CPU time (all CPUs) that was busy while `work` ran, in %. */
async function machineBusyAround(work) {
  const a = machineTicks();
  const result = await work();
  const b = machineTicks();
  const total = b.total - a.total;
  return { result, machineBusyPct: total > 0 ? (100 * (b.busy - a.busy)) / total : null };
}

function statusKb(pid, key) {
  const m = new RegExp(`${key}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? 0);
}

/** Resident set size of `pid` now (kB). */
export const rssKb = (pid) => statusKb(pid, 'VmRSS');

/**
 * The RSS of an idle `pid` once it has settled (kB): sampled every 500 ms until two samples a second
 * apart differ by less than 1 %, at most `maxMs`. A freshly started daemon sheds ~9 MB of start-up
 * memory within two seconds of being ready; an idle RSS sampled before that made RSS per open
 * stream look ~9 KB smaller at 1,000 streams (and negative at 50).
 */
export async function settledRssKb(pid, maxMs = 10_000) {
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const samples = [rssKb(pid)];
  for (let waited = 0; waited < maxMs; waited += 500) {
    await sleep(500);
    samples.push(rssKb(pid));
    const [before, now] = [samples.at(-3), samples.at(-1)];
    if (before !== undefined && Math.abs(now - before) < before / 100) return now;
  }
  return samples.at(-1);
}

/** Samples the RSS of `pid` every `everyMs` until stopped; `stop()` returns the peak (kB). */
export function sampleRss(pid, everyMs = 25) {
  let peak = rssKb(pid);
  const timer = setInterval(() => {
    try {
      peak = Math.max(peak, rssKb(pid));
    } catch {
      /* process gone */
    }
  }, everyMs);
  return {
    sample: () => (peak = Math.max(peak, rssKb(pid))),
    stop() {
      clearInterval(timer);
      try {
        peak = Math.max(peak, rssKb(pid));
      } catch {
        /* process gone */
      }
      return peak;
    },
  };
}

/**
 * CPU and RSS of one process around a piece of work. `settle` (the daemon's) waits for the
 * background work the requests caused (receipt fetches) and returns its counters, so that CPU
 * counts too; `receipts` is the change of those counters.
 */
export async function measureProcess(pid, work, settle) {
  if (pid === undefined) return { ...(await machineBusyAround(work)), cpuUs: null, threads: null, io: null, rssBeforeKb: null, rssPeakKb: null, receipts: null };
  const before = settle ? await settle() : null;
  const rssBeforeKb = rssKb(pid);
  const rss = sampleRss(pid);
  const threads0 = threadTimes(pid);
  const io0 = ioCalls(pid);
  const cpu0 = cpuMicros(pid);
  const { result, machineBusyPct } = await machineBusyAround(() => work(rss));
  const after = settle ? await settle() : null;
  const cpuUs = cpuMicros(pid) - cpu0;
  const threads = threadDelta(pid, threads0, threadTimes(pid));
  const io1 = ioCalls(pid);
  const io = { reads: io1.reads - io0.reads, writes: io1.writes - io0.writes };
  const receipts = before && after ? Object.fromEntries(Object.keys(after).map((k) => [k, after[k] - (before[k] ?? 0)])) : null;
  return { result, cpuUs, threads, io, rssBeforeKb, rssPeakKb: rss.stop(), receipts, machineBusyPct };
}
