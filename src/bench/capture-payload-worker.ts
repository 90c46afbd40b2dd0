import { randomUUID } from "node:crypto";
import { parentPort, workerData } from "node:worker_threads";
import { CompactEncrypt, importJWK } from "jose";
import type { PayloadJob, PayloadReply, PayloadWorkerData } from "./capture-payload-job.js";
import { CAPTURE_KEY_ALG, PAYLOAD_LIFETIME_SECONDS } from "./capture-payload-job.js";
import type { TestCard } from "./test-cards.js";

/**
 * A worker thread that makes capture bodies (see capture-bodies.ts). Card numbers reach it in
 * memory from the main thread's TestCardSource and leave it only inside the JWEs.
 */

/**
 * Encryptions in flight per worker. WebCrypto runs each step as a job on libuv's thread pool and
 * jose awaits every one, so one encryption at a time leaves the worker waiting; a few dozen in
 * flight made about twice as many per second on this machine.
 */
const IN_FLIGHT = 32;

type CaptureKey = Awaited<ReturnType<typeof importJWK>>;

const encoder = new TextEncoder();
const { jwk } = workerData as PayloadWorkerData;

/**
 * One capture body, as the capture frame makes it: the claims encrypted with a fresh ephemeral
 * P-256 key (ECDH-ES+A256KW) and A256GCM, exp 5 minutes after iat, a jti used only here.
 */
async function captureBody(job: PayloadJob, card: TestCard, key: CaptureKey): Promise<string> {
  const iat = Math.floor(Date.now() / 1000);
  const claims = {
    iss: job.issuer,
    aud: job.audience,
    iat,
    exp: iat + PAYLOAD_LIFETIME_SECONDS,
    jti: randomUUID(),
    card: { ...card, cvc: "123" },
  };
  const payload = await new CompactEncrypt(encoder.encode(JSON.stringify(claims)))
    .setProtectedHeader({ alg: CAPTURE_KEY_ALG, enc: "A256GCM", kid: jwk.kid, cty: "JWT" })
    .encrypt(key);
  return JSON.stringify({ session: job.session, payload });
}

async function bodiesOf(job: PayloadJob, key: CaptureKey): Promise<string[]> {
  const lines: string[] = [];
  for (let i = 0; i < job.cards.length; i += IN_FLIGHT) {
    const slice = job.cards.slice(i, i + IN_FLIGHT);
    lines.push(...(await Promise.all(slice.map((card) => captureBody(job, card, key)))));
  }
  return lines;
}

/** The key is imported once; then every job is answered in turn. */
async function serve(): Promise<void> {
  const port = parentPort;
  if (port === null) throw new Error("capture-payload-worker runs as a worker thread");
  const key = await importJWK(jwk, CAPTURE_KEY_ALG);
  port.on("message", (job: PayloadJob) => {
    bodiesOf(job, key).then(
      (lines) => port.postMessage({ id: job.id, lines } satisfies PayloadReply),
      (err: unknown) => {
        const error = err instanceof Error ? err.message : String(err);
        port.postMessage({ id: job.id, error } satisfies PayloadReply);
      },
    );
  });
}

await serve();
