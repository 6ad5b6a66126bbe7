// CPU time and memory of another process, read from procfs (Linux only).
import { readFileSync } from 'node:fs';

const TICK_US = 1e6 / 100; // USER_HZ is 100 on Linux

/** utime + stime of `pid` (all its threads, dead ones included) in µs; 10 ms resolution. */
export function cpuMicros(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may contain spaces) start after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * TICK_US; // fields 14 and 15 of stat(5)
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

/** CPU and RSS of one process around a piece of work. */
export async function measureProcess(pid, work) {
  if (pid === undefined) return { result: await work(), cpuUs: null, rssBeforeKb: null, rssPeakKb: null };
  const rssBeforeKb = rssKb(pid);
  const rss = sampleRss(pid);
  const cpu0 = cpuMicros(pid);
  const result = await work(rss);
  const cpuUs = cpuMicros(pid) - cpu0;
  return { result, cpuUs, rssBeforeKb, rssPeakKb: rss.stop() };
}
