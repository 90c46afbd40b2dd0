import { cpuSecondsOf, memoryOf } from "./proc-status.js";

export interface ResourceUse {
  /** Highest VmRSS seen while sampling, in MB. */
  readonly maxRssMB: number;
  /** CPU the process used over the sampled span, as % of one core. */
  readonly cpuPercent: number;
}

const SAMPLE_MS = 200;

/** Samples a server's VmRSS and CPU time while a scenario runs. */
export class ResourceSampler {
  private maxRss = 0;
  private readonly timer: NodeJS.Timeout;
  private readonly started = performance.now();
  private readonly cpuAtStart: Promise<number | undefined>;

  constructor(private readonly pid: number) {
    this.cpuAtStart = cpuSecondsOf(pid);
    this.timer = setInterval(() => void this.sample(), SAMPLE_MS);
  }

  private async sample(): Promise<void> {
    const memory = await memoryOf(this.pid);
    if (memory !== undefined && memory.rssMB > this.maxRss) this.maxRss = memory.rssMB;
  }

  async stop(): Promise<ResourceUse> {
    clearInterval(this.timer);
    await this.sample();
    const [before, after] = await Promise.all([this.cpuAtStart, cpuSecondsOf(this.pid)]);
    const seconds = (performance.now() - this.started) / 1000;
    const cpu = before === undefined || after === undefined ? Number.NaN : after - before;
    return { maxRssMB: this.maxRss, cpuPercent: (100 * cpu) / seconds };
  }
}
