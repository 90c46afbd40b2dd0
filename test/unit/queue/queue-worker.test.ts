import { describe, expect, it } from "vitest";
import { QueueWorker } from "../../../src/queue/queue-worker.js";

const until = async (check: () => boolean, ms = 2_000) => {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error("timed out");
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
};

describe("QueueWorker", () => {
  it("drains again at once while it finds work, then waits for the idle interval or a kick", async () => {
    const work = [3, 2, 0];
    let passes = 0;
    const worker = new QueueWorker(
      async () => {
        passes += 1;
        return work.shift() ?? 0;
      },
      { idleMs: 60_000, onError: () => undefined },
    );
    worker.start();
    await until(() => passes === 3);
    // Idle now (a minute to wait): only a kick runs another pass.
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(passes).toBe(3);
    worker.kick();
    await until(() => passes === 4);
    await worker.stop();
    worker.kick();
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(passes).toBe(4);
  });

  it("reports a failed pass and keeps running", async () => {
    const errors: unknown[] = [];
    let passes = 0;
    const worker = new QueueWorker(
      async () => {
        passes += 1;
        if (passes === 1) throw new Error("store down");
        return 0;
      },
      { idleMs: 10, onError: (err) => errors.push(err) },
    );
    worker.start();
    await until(() => passes >= 3);
    await worker.stop();
    expect(errors).toHaveLength(1);
    expect((errors[0] as Error).message).toBe("store down");
  });

  it("a kick during a pass runs another pass right after it", async () => {
    let release: () => void = () => undefined;
    let passes = 0;
    const worker = new QueueWorker(
      async () => {
        passes += 1;
        if (passes === 1) await new Promise<void>((resolve) => (release = resolve));
        return 0;
      },
      { idleMs: 60_000, onError: () => undefined },
    );
    worker.start();
    await until(() => passes === 1);
    worker.kick();
    release();
    await until(() => passes === 2);
    await worker.stop();
  });
});
