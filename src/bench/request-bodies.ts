/**
 * Request bodies made before a wrk run, one per line of a file, for loads wrk's Lua cannot make
 * itself (capture: ECDH-ES needs P-256 and AES key wrap). Each line is sent once (see the
 * `lines` workload in wrk-script.ts).
 */
export interface BodySource {
  /** Requests per second a peak run is sized for: generous, since a thread that runs out stops. */
  readonly peakEstimate: number;
  /** What the bodies are, for progress lines ("capture bodies"). */
  readonly label: string;
  /** Writes `count` bodies to `file` (mode 0600), one per line. */
  write(file: string, count: number): Promise<WrittenBodies>;
}

export interface WrittenBodies {
  readonly made: number;
  readonly seconds: number;
  /** Worker threads that made them. */
  readonly workers: number;
  /** When the first-made body stops being valid (ms since the epoch), if bodies expire. */
  readonly validUntilMs: number | undefined;
}

/** What a scenario's results say about its bodies (no body content: they hold card data). */
export interface BodiesUse {
  readonly made: number;
  readonly sent: number;
  /** Requests wrk wanted to send after its thread's bodies ran out (its thread then stopped). */
  readonly missing: number;
  readonly generationSeconds: number;
  readonly generatedPerSecond: number;
}

/** Headroom over the expected rate, so a run that goes faster than expected still has bodies. */
const HEADROOM = 1.3;
const MIN_BODIES = 200;

/** Bodies for `seconds` at `rate` requests per second (the held rate, or the peak estimate). */
export function bodiesNeeded(rate: number, seconds: number): number {
  return Math.max(MIN_BODIES, Math.ceil(rate * seconds * HEADROOM));
}

const fmt = (n: number) => Math.round(n).toLocaleString("en-US");

/**
 * Makes the bodies for one wrk run of `seconds` right before it (capture payloads expire 5
 * minutes after they are made), says how long that took, and warns when the run would outlast
 * them: the vault would then refuse the late ones as expired, which the results would show.
 */
export async function prepareBodies(
  source: BodySource,
  run: { readonly name: string; readonly rate: number; readonly seconds: number; file: string },
): Promise<WrittenBodies> {
  const rate = run.rate > 0 ? run.rate : source.peakEstimate;
  const written = await source.write(run.file, bodiesNeeded(rate, run.seconds));
  const perSecond = written.made / Math.max(written.seconds, 1e-3);
  process.stderr.write(
    `  ${run.name}: ${fmt(written.made)} ${source.label} for ${run.seconds} s at ≤ ${fmt(rate)} req/s ` +
      `made in ${written.seconds.toFixed(1)} s (${fmt(perSecond)}/s, ${written.workers} worker threads)\n`,
  );
  if (
    written.validUntilMs !== undefined &&
    Date.now() + run.seconds * 1000 > written.validUntilMs
  ) {
    process.stderr.write(
      `  ${run.name}: WARNING the first bodies expire before this ${run.seconds} s run ends; ` +
        "expect expired-payload failures (shorten BENCH_SECONDS)\n",
    );
  }
  return written;
}
