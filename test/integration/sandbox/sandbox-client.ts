import { request } from "node:https";
import type { DestinationStream } from "pino";

/** A real HTTPS client for the sandbox, trusting only its certificate. */
export interface Answer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly text: string;
  readonly json: Record<string, unknown>;
}

export interface PostOptions {
  readonly method?: string;
  readonly path?: string;
  readonly contentType?: string;
}

export function postRaw(
  baseUrl: string,
  ca: string,
  body: string | Buffer,
  options: PostOptions = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(new URL(options.path ?? "/v1/charges", baseUrl), {
      method: options.method ?? "POST",
      ca,
      agent: false,
      headers: { "content-type": options.contentType ?? "application/json" },
    });
    req.on("error", reject);
    req.on("response", (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        let json: Record<string, unknown> = {};
        try {
          json = JSON.parse(text);
        } catch {
          // Not JSON: the test reads `text`.
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
      });
    });
    req.end(body);
  });
}

export interface ChargeInput {
  readonly amount?: unknown;
  readonly currency?: unknown;
  readonly number: string;
  readonly expMonth?: number;
  readonly expYear?: number;
  readonly cvc?: string;
}

/** A year well ahead of today, so the card is current whatever the date of the run. */
export const FUTURE_YEAR = new Date().getUTCFullYear() + 3;

export function chargeJson(input: ChargeInput): string {
  return JSON.stringify({
    amount: input.amount ?? 1000,
    currency: input.currency ?? "usd",
    card: {
      number: input.number,
      exp_month: input.expMonth ?? 12,
      exp_year: input.expYear ?? FUTURE_YEAR,
      ...(input.cvc === undefined ? {} : { cvc: input.cvc }),
    },
  });
}

/** The same charge as Stripe's form encoding: `card[number]=…`. */
export function chargeForm(input: ChargeInput): string {
  const params = new URLSearchParams({
    amount: String(input.amount ?? 1000),
    currency: String(input.currency ?? "usd"),
    "card[number]": input.number,
    "card[exp_month]": String(input.expMonth ?? 12),
    "card[exp_year]": String(input.expYear ?? FUTURE_YEAR),
  });
  if (input.cvc !== undefined) params.set("card[cvc]", input.cvc);
  return params.toString();
}

export type Encoding = "json" | "form";

export function postCharge(baseUrl: string, ca: string, input: ChargeInput, encoding: Encoding) {
  return encoding === "json"
    ? postRaw(baseUrl, ca, chargeJson(input))
    : postRaw(baseUrl, ca, chargeForm(input), {
        contentType: "application/x-www-form-urlencoded",
      });
}

/** A pino destination that keeps every line, for "nothing sensitive was logged" checks. */
export function captureLog(): { stream: DestinationStream; lines: string[] } {
  const lines: string[] = [];
  return { stream: { write: (line: string) => void lines.push(line) }, lines };
}

/** Every string or number value in a JSON document, at any depth. */
export function jsonValues(value: unknown): string[] {
  if (value === null || value === undefined) return [];
  if (typeof value === "object") return Object.values(value).flatMap(jsonValues);
  return [String(value)];
}
