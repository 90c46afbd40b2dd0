import { once } from "node:events";
import type { WriteStream } from "node:fs";
import { createWriteStream } from "node:fs";
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import { MAX_CAPTURE_ATTEMPTS } from "../services/capture/capture-service.js";
import type { CaptureJwk, PayloadJob, PayloadReply } from "./capture-payload-job.js";
import { CAPTURE_KEY_ALG, PAYLOAD_LIFETIME_SECONDS } from "./capture-payload-job.js";
import { HttpsJsonClient } from "./https-json.js";
import type { BodySource, WrittenBodies } from "./request-bodies.js";
import type { TestCardSource } from "./test-cards.js";

/** The merchant page a bench session is made for (the vault never contacts it). */
const MERCHANT_ORIGIN = "https://shop.example";
/**
 * Cards per job, each job under a session of its own: a session takes MAX_CAPTURE_ATTEMPTS
 * submissions, as a checkout page's session would (one checkout, a few tries).
 */
const CARDS_PER_JOB = MAX_CAPTURE_ATTEMPTS;
/** Jobs each worker holds, so it has the next while the main thread writes the last one out. */
const JOBS_PER_WORKER = 2;
const WORKER_URL = new URL("./capture-payload-worker.js", import.meta.url);

interface Session {
  readonly id: string;
  readonly session: string;
  readonly audience: string;
}

/** A payload worker and the jobs it has not answered yet. */
class PayloadWorker {
  private readonly worker: Worker;
  private readonly pending = new Map<number, (reply: PayloadReply) => void>();
  private failure: Error | undefined;

  constructor(jwk: CaptureJwk) {
    this.worker = new Worker(WORKER_URL, { workerData: { jwk } });
    this.worker.on("message", (reply: PayloadReply) => {
      this.pending.get(reply.id)?.(reply);
      this.pending.delete(reply.id);
    });
    this.worker.on("error", (err) => this.fail(err));
    this.worker.on("exit", (code) =>
      this.fail(new Error(`payload worker exited with code ${code}`)),
    );
  }

  private fail(err: Error): void {
    this.failure ??= err;
    for (const [id, answer] of this.pending) answer({ id, error: err.message });
    this.pending.clear();
  }

  async run(job: PayloadJob): Promise<readonly string[]> {
    if (this.failure !== undefined) throw this.failure;
    const reply = await new Promise<PayloadReply>((resolve) => {
      this.pending.set(job.id, resolve);
      this.worker.postMessage(job);
    });
    if ("error" in reply) throw new Error(`making capture payloads: ${reply.error}`);
    return reply.lines;
  }

  async stop(): Promise<void> {
    this.worker.removeAllListeners("exit");
    this.fail(new Error("payload worker stopped"));
    await this.worker.terminate();
  }
}

async function writeLines(out: WriteStream, lines: readonly string[]): Promise<void> {
  // events.once rejects on "error" and removes its listeners either way.
  if (!out.write(`${lines.join("\n")}\n`)) await once(out, "drain");
}

async function finish(out: WriteStream): Promise<void> {
  const finished = once(out, "finish");
  out.end();
  await finished;
}

/**
 * Bodies for `POST /v1/capture/tokenize`, made as the capture frame makes them, to the vault's
 * published ECDH-ES+A256KW key. wrk's Lua cannot do ECDH-ES, so they are made beforehand on
 * worker threads with jose (the key imported once per worker) and written one per line.
 * Every MAX_CAPTURE_ATTEMPTS bodies get a new session (as checkouts do), and every body a new
 * card from the run's TestCardSource, so each is a first-time tokenization under a session the
 * vault verifies once.
 */
export class CaptureBodies implements BodySource {
  readonly label = "capture bodies";

  private constructor(
    private readonly vaultUrl: string,
    private readonly authorization: string,
    private readonly jwk: CaptureJwk,
    private readonly cards: TestCardSource,
    readonly peakEstimate: number,
  ) {}

  /** Reads the vault's published capture key (GET /v1/capture/jwks, no credential). */
  static async open(input: {
    vaultUrl: string;
    authorization: string;
    cards: TestCardSource;
    peakEstimate: number;
  }): Promise<CaptureBodies> {
    const client = new HttpsJsonClient(input.vaultUrl);
    try {
      const res = await client.send("GET", "/v1/capture/jwks");
      const keys = (res.body as { keys?: Record<string, unknown>[] } | undefined)?.keys ?? [];
      const jwk = keys.find(
        (k) => k.alg === CAPTURE_KEY_ALG && k.kty === "EC" && typeof k.kid === "string",
      );
      if (res.status !== 200 || jwk === undefined) {
        throw new Error(`GET /v1/capture/jwks: status ${res.status}, no ${CAPTURE_KEY_ALG} key`);
      }
      const { vaultUrl, authorization, cards, peakEstimate } = input;
      return new CaptureBodies(vaultUrl, authorization, jwk as CaptureJwk, cards, peakEstimate);
    } finally {
      client.close();
    }
  }

  async write(file: string, count: number): Promise<WrittenBodies> {
    const sessions = new HttpsJsonClient(this.vaultUrl, this.authorization);
    const started = performance.now();
    // The first body's iat is at least this late; its exp is iat + 5 minutes.
    const validUntilMs = (Math.floor(Date.now() / 1000) + PAYLOAD_LIFETIME_SECONDS) * 1000;
    const workers = Array.from(
      { length: Math.max(1, availableParallelism()) },
      () => new PayloadWorker(this.jwk),
    );
    const out = createWriteStream(file, { mode: 0o600 });
    let left = count;
    let nextId = 0;
    const lane = async (worker: PayloadWorker) => {
      while (left > 0) {
        const size = Math.min(CARDS_PER_JOB, left);
        left -= size;
        const session = await this.newSession(sessions);
        const job = {
          id: nextId++,
          session: session.session,
          issuer: session.id,
          audience: session.audience,
          cards: this.cards.cards(size),
        };
        try {
          await writeLines(out, await worker.run(job));
        } catch (err) {
          left = 0; // the other lanes stop too
          throw err;
        }
      }
    };
    try {
      await Promise.all(
        workers.flatMap((w) => Array.from({ length: JOBS_PER_WORKER }, () => lane(w))),
      );
    } finally {
      await Promise.allSettled([finish(out), ...workers.map((w) => w.stop())]);
      sessions.close();
    }
    const seconds = (performance.now() - started) / 1000;
    return { made: count, seconds, workers: workers.length, validUntilMs };
  }

  /** POST /v1/capture/sessions with the bench's admin key (it holds every scope, capture included). */
  private async newSession(client: HttpsJsonClient): Promise<Session> {
    const res = await client.send("POST", "/v1/capture/sessions", { origins: [MERCHANT_ORIGIN] });
    const body = res.body as { id?: unknown; session?: unknown; frame_url?: unknown } | undefined;
    const { id, session, frame_url: frameUrl } = body ?? {};
    if (res.status !== 201 || typeof id !== "string" || typeof session !== "string") {
      throw new Error(`POST /v1/capture/sessions: status ${res.status}`);
    }
    // The payload's aud is the vault's public origin, which the frame URL is built on.
    const audience = new URL(String(frameUrl)).origin;
    return { id, session, audience };
  }
}
