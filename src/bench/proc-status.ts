import { readFile } from "node:fs/promises";

/** sysconf(_SC_CLK_TCK): USER_HZ, fixed at 100 in Linux's user-space ABI on x86 and arm. */
const CLOCK_TICKS_PER_SECOND = 100;

export interface MemoryStatus {
  /** Resident set size now, in MB (10^6 bytes, as the targets are stated). */
  readonly rssMB: number;
  /** Peak resident set size since the process started (VmHWM), in MB. */
  readonly peakRssMB: number;
}

function megabytesField(status: string, name: string): number {
  const match = new RegExp(`^${name}:\\s+(\\d+) kB$`, "m").exec(status);
  return match === null ? Number.NaN : (Number(match[1]) * 1024) / 1e6;
}

/** VmRSS and VmHWM of a live process (Linux /proc; proc(5)). */
export async function memoryOf(pid: number): Promise<MemoryStatus | undefined> {
  try {
    const status = await readFile(`/proc/${pid}/status`, "utf8");
    return { rssMB: megabytesField(status, "VmRSS"), peakRssMB: megabytesField(status, "VmHWM") };
  } catch {
    return undefined;
  }
}

/** User + system CPU seconds a live process has used so far (fields 14 and 15 of /proc/pid/stat). */
export async function cpuSecondsOf(pid: number): Promise<number | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8");
    // The command name (field 2) may hold spaces: count fields from after its closing paren.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND;
  } catch {
    return undefined;
  }
}

/** Bytes the process caused to be written to storage so far (write_bytes in /proc/pid/io). */
export async function storageWritesOf(pid: number): Promise<number | undefined> {
  try {
    const io = await readFile(`/proc/${pid}/io`, "utf8");
    const match = /^write_bytes: (\d+)$/m.exec(io);
    return match === null ? undefined : Number(match[1]);
  } catch {
    return undefined;
  }
}

/**
 * Microseconds, since boot, that some task on the machine waited for a CPU or for I/O (Linux
 * pressure stall information, /proc/pressure). Other work on the machine shows up here.
 */
export async function pressureStallUs(resource: "cpu" | "io"): Promise<number | undefined> {
  try {
    const text = await readFile(`/proc/pressure/${resource}`, "utf8");
    const match = /^some .*total=(\d+)$/m.exec(text);
    return match === null ? undefined : Number(match[1]);
  } catch {
    return undefined;
  }
}
