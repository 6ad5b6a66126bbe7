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
  if (pid === undefined) return { ...(await machineBusyAround(work)), cpuUs: null, rssBeforeKb: null, rssPeakKb: null, receipts: null };
  const before = settle ? await settle() : null;
  const rssBeforeKb = rssKb(pid);
  const rss = sampleRss(pid);
  const cpu0 = cpuMicros(pid);
  const { result, machineBusyPct } = await machineBusyAround(() => work(rss));
  const after = settle ? await settle() : null;
  const cpuUs = cpuMicros(pid) - cpu0;
  const receipts = before && after ? Object.fromEntries(Object.keys(after).map((k) => [k, after[k] - (before[k] ?? 0)])) : null;
  return { result, cpuUs, rssBeforeKb, rssPeakKb: rss.stop(), receipts, machineBusyPct };
}
