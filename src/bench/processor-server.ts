import { readFileSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer } from "node:https";
import { TLS_SERVER_OPTIONS } from "../http/tls.js";
import { PROCESSOR_CHARGES_PATH } from "./forward-bodies.js";

const MAX_BODY_BYTES = 64 * 1024;

let charges = 0;

function answer(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
  });
  res.end(text);
}

/**
 * A charge as a processor would take it: the JSON body parsed and its card checked for shape,
 * then a small JSON 200. The card is never logged, stored or echoed (the answer carries only the
 * amount, the currency and the last four digits, as processors answer).
 */
function charge(res: ServerResponse, body: Buffer): void {
  let parsed: { amount?: unknown; currency?: unknown; card?: { number?: unknown } };
  try {
    parsed = JSON.parse(body.toString("utf8")) as typeof parsed;
  } catch {
    answer(res, 400, { error: { type: "invalid_request_error", message: "body is not JSON" } });
    return;
  }
  const number = parsed.card?.number;
  if (typeof number !== "string" || !/^\d{12,19}$/.test(number)) {
    answer(res, 400, { error: { type: "invalid_request_error", message: "card.number" } });
    return;
  }
  charges += 1;
  answer(res, 200, {
    id: `ch_bench${charges.toString(36)}`,
    object: "charge",
    status: "succeeded",
    amount: parsed.amount ?? null,
    currency: parsed.currency ?? null,
    card: { last4: number.slice(-4) },
  });
}

function handle(req: IncomingMessage, res: ServerResponse): void {
  if (req.method === "GET" && req.url === "/healthz") {
    answer(res, 200, { status: "ok" });
    req.resume();
    return;
  }
  if (req.method !== "POST" || req.url !== PROCESSOR_CHARGES_PATH) {
    answer(res, 404, { error: { type: "invalid_request_error", message: "no such route" } });
    req.resume();
    return;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  req.on("data", (chunk: Buffer) => {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) {
      answer(res, 413, { error: { type: "invalid_request_error", message: "too large" } });
      req.destroy();
      return;
    }
    chunks.push(chunk);
  });
  req.on("end", () => {
    if (size <= MAX_BODY_BYTES) charge(res, Buffer.concat(chunks));
  });
}

/**
 * The bench's stand-in card processor (`forward` and `processor-direct`), a process of its own
 * like a real processor: a bare node:https server with the vault's TLS settings, keep-alive and
 * no logging, so it costs as little as possible and the difference between calling it through
 * the vault and calling it directly is the vault's. BENCH_PROCESSOR_HOST / _PORT / _CERT / _KEY
 * configure it; it stops on SIGINT/SIGTERM.
 */
function main(): void {
  const env = process.env;
  const port = Number(env.BENCH_PROCESSOR_PORT);
  const host = env.BENCH_PROCESSOR_HOST ?? "127.0.0.1";
  const server = createServer(
    {
      ...TLS_SERVER_OPTIONS,
      cert: readFileSync(String(env.BENCH_PROCESSOR_CERT), "utf8"),
      key: readFileSync(String(env.BENCH_PROCESSOR_KEY), "utf8"),
      keepAlive: true,
    },
    handle,
  );
  server.keepAliveTimeout = 30_000;
  server.listen(port, host);
  const stop = () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
}

main();
