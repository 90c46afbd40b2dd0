import type { IncomingMessage, ServerResponse } from "node:http";
import type { Logger } from "pino";
import { newId } from "../crypto/random.js";
import type { Clock } from "../services/clock.js";
import { type ChargeRequest, parseChargeRequest } from "./charge-request.js";
import {
  type ChargeEvent,
  chargeBody,
  chargeEvent,
  chargeOf,
  failureBody,
  invalidRequestBody,
  requestErrorBody,
  type SandboxCharge,
} from "./charge-result.js";
import { parseFormBody } from "./form-body.js";
import { httpStatusOf, outcomeFor } from "./outcome-table.js";

/**
 * The sandbox processor's one route, `POST /v1/charges` (docs/sandbox-processor.md). Bodies are
 * never logged and never echoed (PCI DSS v4.0.1 3.3.1, 3.4.1, 10.3): the log line of a charge
 * carries its id, outcome, amount, brand and last four digits only, and an error names the
 * field, never its value (not even the JSON parser's message, which quotes the input).
 */
export const CHARGES_PATH = "/v1/charges";
const MAX_BODY_BYTES = 64 * 1024;

export interface ChargeHandlerOptions {
  readonly clock: Clock;
  readonly logger: Logger;
  /** Called with each charge's event; absent: no webhooks. */
  readonly onEvent?: (event: ChargeEvent) => void;
}

type Reply = (
  status: number,
  body: Record<string, unknown>,
  headers?: Record<string, string>,
) => void;

function replier(res: ServerResponse, requestId: string): Reply {
  return (status, body, headers = {}) => {
    const text = JSON.stringify(body);
    res.writeHead(status, {
      "content-type": "application/json; charset=utf-8",
      "content-length": Buffer.byteLength(text),
      "cache-control": "no-store",
      "request-id": requestId,
      ...headers,
    });
    res.end(text);
  };
}

/** The body, or `undefined` once it passed the cap (the rest is not read). */
function readBody(req: IncomingMessage): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        req.removeAllListeners("data");
        req.pause();
        resolve(undefined);
        return;
      }
      chunks.push(chunk);
    });
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

type BodyParse =
  | { readonly ok: true; readonly value: unknown }
  | { readonly ok: false; readonly message: string };

function parseBody(mediaType: string, raw: Buffer): BodyParse {
  const text = raw.toString("utf8");
  if (mediaType === "application/x-www-form-urlencoded") return parseFormBody(text);
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch {
    return { ok: false, message: "The body is not valid JSON." };
  }
}

const MEDIA_TYPES = new Set(["application/json", "application/x-www-form-urlencoded"]);

interface Refusal {
  readonly status: number;
  readonly body: Record<string, unknown>;
  readonly headers?: Record<string, string>;
}

function refusal(
  status: number,
  code: string,
  message: string,
  headers?: Record<string, string>,
): Refusal {
  return {
    status,
    body: requestErrorBody(code, message),
    ...(headers === undefined ? {} : { headers }),
  };
}

/** Route, method and media type, before a byte of the body is read. */
function checkRequestLine(req: IncomingMessage): Refusal | string {
  if (routeOf(req) !== CHARGES_PATH)
    return refusal(404, "resource_missing", "Unrecognized request URL.");
  if (req.method !== "POST")
    return refusal(405, "method_not_allowed", "Use POST.", { allow: "POST" });
  const mediaType = (req.headers["content-type"] ?? "").split(";")[0]?.trim().toLowerCase() ?? "";
  if (!MEDIA_TYPES.has(mediaType)) {
    const message = "Send application/json or application/x-www-form-urlencoded.";
    return refusal(415, "unsupported_media_type", message);
  }
  return mediaType;
}

/** The validated charge request, or why it is refused (413 or 400). */
async function readChargeRequest(
  req: IncomingMessage,
  now: Date,
): Promise<Refusal | ChargeRequest> {
  const mediaType = checkRequestLine(req);
  if (typeof mediaType !== "string") return mediaType;
  const raw = await readBody(req);
  if (raw === undefined) {
    const message = `The body is over ${MAX_BODY_BYTES} bytes.`;
    return refusal(413, "body_too_large", message, { connection: "close" });
  }
  const body = parseBody(mediaType, raw);
  if (!body.ok) return refusal(400, "body_invalid", body.message);
  const parsed = parseChargeRequest(body.value, now);
  return parsed.ok ? parsed.value : { status: 400, body: invalidRequestBody(parsed.issues) };
}

function isRefusal(value: Refusal | ChargeRequest): value is Refusal {
  return "status" in value;
}

/** The log line of a charge: what an operator needs, and nothing of the card but brand and last 4. */
function chargeLogFields(charge: SandboxCharge, status: number): Record<string, unknown> {
  const { outcome } = charge;
  return {
    route: CHARGES_PATH,
    status,
    charge: charge.id,
    outcome: outcome.kind === "approved" ? "approved" : outcome.code,
    amount: charge.amount,
    currency: charge.currency,
    brand: charge.card.brand,
    last4: charge.card.last4,
  };
}

export function createChargeHandler(options: ChargeHandlerOptions) {
  const { clock, logger } = options;
  return async function handleCharge(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const requestId = newId("req");
    const reply = replier(res, requestId);
    const log = logger.child({ request_id: requestId });
    const now = clock.now();
    const request = await readChargeRequest(req, now);
    if (isRefusal(request)) {
      reply(request.status, request.body, request.headers);
      log.info(
        { method: req.method, route: routeOf(req), status: request.status },
        "sandbox request",
      );
      return;
    }
    // The one place the sandbox reads the clear number: to look up its test outcome.
    const outcome = outcomeFor(request.pan.revealDigits(), request.expired);
    const ids = { chargeId: newId("ch"), authorizationId: newId("auth") };
    const charge = chargeOf(request, outcome, ids, now);
    const status = httpStatusOf(outcome);
    reply(status, status === 200 ? chargeBody(charge) : failureBody(charge));
    log.info(chargeLogFields(charge, status), "sandbox charge");
    // PCI DSS 3.3.1.2: the CVC was only checked for form; nothing keeps it past this request.
    options.onEvent?.(chargeEvent(charge, newId("evt")));
  };
}

/** The path without the query (which is never logged: it might hold anything). */
function routeOf(req: IncomingMessage): string {
  const path = (req.url ?? "").split("?")[0] ?? "";
  return path === CHARGES_PATH ? CHARGES_PATH : "(unmatched)";
}
