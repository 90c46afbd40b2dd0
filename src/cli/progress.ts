/**
 * A progress bar for long jobs: redrawn in place on a terminal, one line per update otherwise
 * (so logs and tests can follow it). Written to stderr, so --json output on stdout stays clean.
 */
export class ProgressBar {
  private readonly started = Date.now();
  private readonly tty = process.stderr.isTTY === true;

  constructor(private readonly label: string) {}

  update(done: number, total: number): void {
    const ratio = total === 0 ? 1 : Math.min(1, done / total);
    const seconds = Math.max((Date.now() - this.started) / 1000, 0.001);
    const rate = Math.round(done / seconds);
    const text = `${this.label} ${Math.floor(ratio * 100)}% ${done}/${total} (${rate}/s)`;
    if (this.tty) {
      const width = 30;
      const filled = Math.round(ratio * width);
      process.stderr.write(`\r[${"#".repeat(filled)}${".".repeat(width - filled)}] ${text}`);
    } else {
      process.stderr.write(`${text}\n`);
    }
  }

  finish(): void {
    if (this.tty) process.stderr.write("\n");
  }
}
