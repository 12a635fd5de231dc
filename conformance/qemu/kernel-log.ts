// The kernel log as captured from the serial console, line by line, and the recognisers for
// splats (WARN, BUG, oops, lockdep reports, panics) in it.

/** Lines that open a kernel splat (kernel/panic.c:__warn, lib/bug.c, kernel/locking/lockdep.c, mm/oops). */
const SPLAT_START = [
  /------------\[ cut here \]------------/,
  // 7.3: "WARNING: drivers/iommu/iommufd/ioas.c:618 at fn+0x361/0x452, CPU#0: comm/40";
  // older: "WARNING: CPU: 0 PID: 40 at ..."; lockdep: "WARNING: possible circular locking ..."
  /\bWARNING: /,
  /\bBUG: /,
  /kernel BUG at /,
  /\bOops: /,
  /general protection fault/,
  /\bKernel panic - not syncing/,
  /\bINFO: task .* blocked for more than/,
  /\bINFO: (possible|inconsistent|trying to register)/,
  /\bUBSAN: /,
];
/** Lines that close one (kernel/panic.c:print_oops_end_marker, lockdep's closing stack). */
const SPLAT_END = /---\[ end (trace|Kernel panic)/;
/** Markers the shim writes to /dev/kmsg after each call ("vfio-mc-sync <port> <seq>"). */
export const SYNC_MARKER = /vfio-mc-sync (\d+) (\d+)\s*$/;

export function isSplatStart(line: string): boolean {
  return SPLAT_START.some((re) => re.test(line));
}

/** The splat text found in these lines (all of each splat, up to its end marker), or undefined. */
export function extractSplats(lines: string[]): string | undefined {
  const out: string[] = [];
  let inside = false;
  for (const line of lines) {
    if (SYNC_MARKER.test(line)) continue;
    if (!inside && isSplatStart(line)) inside = true;
    if (inside) {
      out.push(line);
      if (SPLAT_END.test(line)) inside = false;
    }
  }
  return out.length > 0 ? out.join('\n') : undefined;
}

type Waiter = { test: (line: string, index: number) => boolean; resolve: (index: number) => void };

/** Append-only console log with waiters; index = line number since boot. */
export class KernelLog {
  readonly lines: string[] = [];
  private partial = '';
  private waiters: Waiter[] = [];

  /** Feeds raw console bytes; CRs from the 8250 console are dropped. */
  push(chunk: string): void {
    const parts = (this.partial + chunk.replace(/\r/g, '')).split('\n');
    this.partial = parts.pop() ?? '';
    for (const line of parts) this.add(line);
  }

  /** Flushes a final line without a newline (at VM exit). */
  flush(): void {
    if (this.partial.length > 0) this.add(this.partial);
    this.partial = '';
  }

  private add(line: string): void {
    const index = this.lines.push(line) - 1;
    this.waiters = this.waiters.filter((w) => {
      if (!w.test(line, index)) return true;
      w.resolve(index);
      return false;
    });
  }

  get length(): number {
    return this.lines.length;
  }

  /** Index of the first line at or after `from` matching re; waits up to timeoutMs, else undefined. */
  waitFor(re: RegExp, from: number, timeoutMs: number): Promise<number | undefined> {
    for (let i = from; i < this.lines.length; i++) if (re.test(this.lines[i])) return Promise.resolve(i);
    return new Promise((resolve) => {
      const waiter: Waiter = {
        test: (line, index) => index >= from && re.test(line),
        resolve: (index) => {
          clearTimeout(timer);
          resolve(index);
        },
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        resolve(undefined);
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }

  slice(from: number, to = this.lines.length): string[] {
    return this.lines.slice(from, to);
  }

  text(): string {
    return this.lines.join('\n');
  }
}

/** The first line of a lockdep report (kernel/locking/lockdep.c print_*_bug). */
const LOCKDEP_START =
  /WARNING: (possible circular locking dependency|possible recursive locking|inconsistent lock state|possible irq lock inversion dependency|bad unlock balance|held lock freed|lock held when returning to user space)/;

/**
 * A splat split into its lockdep reports and the rest (WARN, BUG, oops): lockdep reports a
 * lock order that can deadlock, which no model step predicts, so the replay attaches them to
 * the step instead of comparing them. A report runs to the end of its stack (`</TASK>`).
 */
export function splitLockdep(splat: string | undefined): { lockdep?: string; other?: string } {
  if (!splat) return {};
  const lockdep: string[] = [];
  const other: string[] = [];
  let inside = false;
  for (const line of splat.split('\n')) {
    if (LOCKDEP_START.test(line)) inside = true;
    else if (inside && isSplatStart(line) && !/WARNING: /.test(line)) inside = false;
    (inside ? lockdep : other).push(line);
    if (inside && line.includes('</TASK>')) inside = false;
  }
  const content = (l: string) => l.replace(/^\[[\s\d.]+\]/, '').trim();
  const text = (xs: string[]) =>
    xs.some((l) => content(l) !== '' && !/^=+$/.test(content(l))) ? xs.join('\n') : undefined;
  const l = text(lockdep);
  const o = text(other);
  return { ...(l && { lockdep: l }), ...(o && { other: o }) };
}

/** The lockdep reports in these log lines: where each starts (index into `lines`) and its text. */
export function lockdepReports(lines: readonly string[]): { index: number; text: string }[] {
  const out: { index: number; text: string }[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (!LOCKDEP_START.test(lines[i])) continue;
    const end = lines.findIndex((l, j) => j > i && l.includes('</TASK>'));
    const last = end < 0 ? Math.min(lines.length, i + 80) : end + 1;
    out.push({
      index: i,
      text: lines
        .slice(i, last)
        .filter((l) => !SYNC_MARKER.test(l))
        .join('\n'),
    });
    i = last - 1;
  }
  return out;
}

/** One line for a lockdep report: its title and the two locks of a circular dependency. */
export function lockdepSummary(text: string): string {
  const lines = text.split('\n').map((l) => l.replace(/^\[[\s\d.]+\]\s*/, '').trim());
  const title = lines.find((l) => LOCKDEP_START.test(l))?.replace(/^WARNING: /, '') ?? 'lockdep report';
  const lock = (after: RegExp) => {
    const i = lines.findIndex((l) => after.test(l));
    return i >= 0 ? lines[i + 1]?.replace(/^[0-9a-f]+ /, '') : undefined;
  };
  const acquire = lock(/is trying to acquire lock:/);
  const holding = lock(/already holding lock:/);
  return [title, acquire && `acquiring ${acquire}`, holding && `holding ${holding}`]
    .filter(Boolean)
    .join('; ');
}
