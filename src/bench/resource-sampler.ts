import { cpuSecondsOf, memoryOf, pressureStallUs, storageWritesOf } from "./proc-status.js";

export interface ResourceUse {
  /** Highest VmRSS seen while sampling, in MB. */
  readonly maxRssMB: number;
  /** CPU the process used over the sampled span, as % of one core. */
  readonly cpuPercent: number;
  /** What the process wrote to storage over the span, in MB. */
  readonly storageWritesMB: number;
  /**
   * Share of the span in which some task on the machine waited for a CPU / for I/O (PSI "some").
   * High CPU pressure means other work competed with the server and the load generator.
   */
  readonly machineCpuPressurePercent: number;
  readonly machineIoPressurePercent: number;
}

const SAMPLE_MS = 200;

interface Counters {
  readonly at: number;
  readonly cpu: number | undefined;
  readonly writes: number | undefined;
  readonly cpuStall: number | undefined;
  readonly ioStall: number | undefined;
}

async function counters(pid: number): Promise<Counters> {
  const [cpu, writes, cpuStall, ioStall] = await Promise.all([
    cpuSecondsOf(pid),
    storageWritesOf(pid),
    pressureStallUs("cpu"),
    pressureStallUs("io"),
  ]);
  return { at: performance.now(), cpu, writes, cpuStall, ioStall };
}

function delta(a: number | undefined, b: number | undefined): number {
  return a === undefined || b === undefined ? Number.NaN : b - a;
}

/** Samples a server's VmRSS while a scenario runs, and its CPU, writes and the machine's pressure. */
export class ResourceSampler {
  private maxRss = 0;
  private readonly timer: NodeJS.Timeout;
  private readonly atStart: Promise<Counters>;

  constructor(private readonly pid: number) {
    this.atStart = counters(pid);
    this.timer = setInterval(() => void this.sample(), SAMPLE_MS);
  }

  private async sample(): Promise<void> {
    const memory = await memoryOf(this.pid);
    if (memory !== undefined && memory.rssMB > this.maxRss) this.maxRss = memory.rssMB;
  }

  async stop(): Promise<ResourceUse> {
    clearInterval(this.timer);
    await this.sample();
    const [start, end] = await Promise.all([this.atStart, counters(this.pid)]);
    const ms = end.at - start.at;
    const percentOfSpan = (us: number) => Math.round(us / 10 / ms);
    return {
      maxRssMB: this.maxRss,
      cpuPercent: (100 * delta(start.cpu, end.cpu)) / (ms / 1000),
      storageWritesMB: Math.round(delta(start.writes, end.writes) / 1e5) / 10,
      machineCpuPressurePercent: percentOfSpan(delta(start.cpuStall, end.cpuStall)),
      machineIoPressurePercent: percentOfSpan(delta(start.ioStall, end.ioStall)),
    };
  }
}
