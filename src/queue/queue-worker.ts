/**
 * Runs a queue's `drain` (claim due rows, work them, return how many it took) in a loop: again at
 * once while it finds work, otherwise after `idleMs` or when `kick()` says new rows arrived. One
 * pass at a time per worker; several nodes each run their own (the claims never overlap).
 */
export class QueueWorker {
  private running = false;
  private timer: NodeJS.Timeout | undefined;
  private pass: Promise<void> | undefined;
  private kicked = false;

  constructor(
    private readonly drain: () => Promise<number>,
    private readonly options: {
      readonly idleMs: number;
      readonly onError: (err: unknown) => void;
    },
  ) {}

  start(): void {
    if (this.running) return;
    this.running = true;
    this.schedule(0);
  }

  /** New work was queued: run a pass soon instead of waiting out the idle interval. */
  kick(): void {
    if (!this.running) return;
    if (this.pass !== undefined) {
      this.kicked = true;
      return;
    }
    this.schedule(0);
  }

  async stop(): Promise<void> {
    this.running = false;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    await this.pass;
  }

  private schedule(delayMs: number): void {
    if (!this.running) return;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.pass = this.runPass().finally(() => {
        this.pass = undefined;
      });
    }, delayMs);
    this.timer.unref();
  }

  private async runPass(): Promise<void> {
    let took = 0;
    this.kicked = false;
    try {
      took = await this.drain();
    } catch (err) {
      this.options.onError(err);
    }
    if (!this.running) return;
    this.schedule(took > 0 || this.kicked ? 0 : this.options.idleMs);
  }
}
