import { brandRules, detectBrand } from "../../domain/iin-table.js";
import { findPanLikeRuns } from "../../domain/pan-scan.js";
import { VaultError } from "../../errors/registry.js";
import { parseJsonBody } from "../../http/json-body-parser.js";
import type { WebhookProvider } from "../../store/webhook-endpoints-repo.js";
import type { EndpointSettings } from "./endpoint-config.js";

export type MetadataValue = string | number | boolean | null;

/** What is kept of a received event: its identity and a few scalar facts, never the body. */
export interface EventMetadata {
  readonly providerEventId: string;
  readonly eventType: string;
  readonly metadata: Readonly<Record<string, MetadataValue>>;
}

/** Provider event ids and types: printable ASCII, bounded (they become keys and log fields). */
const EVENT_ID = /^[\x21-\x7e]{1,256}$/;
const EVENT_TYPE = /^[A-Za-z0-9_.:-]{1,100}$/;
const MAX_METADATA_STRING = 100;
/** Metadata numbers are amounts, counts and times in seconds; longer ones are not kept. */
const MAX_METADATA_NUMBER = 1e12;

/**
 * The scalar fields kept, per provider, as dotted paths in the body: identifiers, type, status,
 * amount and time. Nothing else of the payload is stored (issue 6: "only event metadata"), and a
 * value is kept only if it is a short scalar without a card-number-like run.
 */
const KEPT_FIELDS: Readonly<Record<WebhookProvider, readonly string[]>> = {
  stripe: [
    "created",
    "livemode",
    "api_version",
    "data.object.id",
    "data.object.object",
    "data.object.status",
    "data.object.amount",
    "data.object.currency",
    "data.object.authorization_id",
    "data.object.failure_code",
    "data.object.payment_intent",
  ],
  standard: ["timestamp", "data.id", "data.object", "data.status", "data.amount", "data.currency"],
  paypal: [
    "create_time",
    "resource_type",
    "resource.id",
    "resource.state",
    "resource.status",
    "resource.amount.total",
    "resource.amount.currency",
    "resource.amount.value",
    "resource.amount.currency_code",
  ],
  hmac: ["created", "created_at", "data.id", "data.object", "data.status"],
};

const DEFAULT_ID_FIELD: Readonly<Record<WebhookProvider, string>> = {
  stripe: "id",
  standard: "id",
  paypal: "id",
  hmac: "id",
};
const DEFAULT_TYPE_FIELD: Readonly<Record<WebhookProvider, string>> = {
  stripe: "type",
  standard: "type",
  paypal: "event_type",
  hmac: "type",
};

/**
 * Refuses a body that carries anything that looks like a card number (PCI DSS 3.2.1, 3.3: the
 * vault must not become a store of card data through a side door). The scan runs over the raw
 * text, so digits in a string, a number literal or an unknown field are all found; the body is
 * then dropped, not stored, and never quoted in the response or the logs.
 *
 * "Looks like" is the log scrubber's test (a 13-19 digit run, plain or grouped, passing Luhn)
 * narrowed to numbers a known network issues (IIN range and length, src/domain/iin-table.ts):
 * providers' payloads are full of millisecond timestamps and numeric ids, and about one in ten
 * 13-digit timestamps passes Luhn. docs/webhooks.md names this trade-off.
 */
export function refuseCardData(rawBody: Buffer): void {
  if (containsCardNumber(rawBody.toString("latin1"))) throw new VaultError("WEBHOOK_CARD_DATA");
}

export function containsCardNumber(text: string): boolean {
  // Digits grouped by other separators (dots, tabs, slashes, underscores, several spaces) are
  // read as one run too, as a person would read them.
  const joined = text.replace(DIGIT_SEPARATORS, "");
  return [text, ...(joined === text ? [] : [joined])].some((candidate) => cardLikeRun(candidate));
}

/** Separators between two digits that a card number may be written with. */
const DIGIT_SEPARATORS = /(?<=[0-9])[\s.\-_/\\:,]{1,3}(?=[0-9])/g;

function cardLikeRun(text: string): boolean {
  return findPanLikeRuns(text).some((span) => {
    const digits = text.slice(span.start, span.end).replace(/[^0-9]/g, "");
    const brand = detectBrand(digits);
    return brand !== "unknown" && brandRules(brand).lengths.includes(digits.length);
  });
}

/** A JSON number whose integer digits could be a card number (e.g. 4.242424242424242e15). */
function numberLooksLikeCard(value: number): boolean {
  if (!Number.isFinite(value) || Math.abs(value) < 1e12 || Math.abs(value) >= 1e20) return false;
  return containsCardNumber(BigInt(Math.trunc(Math.abs(value))).toString());
}

/** True when `test` holds for any key or scalar value, at any depth (iterative: no recursion limit). */
function someValue(root: unknown, test: (value: unknown) => boolean): boolean {
  const stack: unknown[] = [root];
  while (stack.length > 0) {
    const value = stack.pop();
    if (value !== null && typeof value === "object") {
      if (Array.isArray(value)) stack.push(...value);
      else
        for (const [key, inner] of Object.entries(value)) {
          if (test(key)) return true;
          stack.push(inner);
        }
    } else if (test(value)) return true;
  }
  return false;
}

function at(value: unknown, path: string): unknown {
  let current = value;
  for (const part of path.split(".")) {
    if (current === null || typeof current !== "object" || Array.isArray(current)) return undefined;
    if (!Object.hasOwn(current, part)) return undefined;
    current = (current as Record<string, unknown>)[part];
  }
  return current;
}

/**
 * Parses the verified raw body and extracts the event's id, type and metadata. The JSON parser
 * is the API's own (UTF-8 only, no prototype keys, errors never quote the body).
 */
export function eventMetadata(
  provider: WebhookProvider,
  settings: EndpointSettings,
  rawBody: Buffer,
  headerEventId: string | undefined,
): EventMetadata {
  let body: unknown;
  try {
    body = parseJsonBody(rawBody);
  } catch {
    throw new VaultError("WEBHOOK_BODY_INVALID", { detail: "the body is not well-formed JSON" });
  }
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    throw new VaultError("WEBHOOK_BODY_INVALID", { detail: "the body is not a JSON object" });
  }
  const idField = settings.event_id_field ?? DEFAULT_ID_FIELD[provider];
  const typeField = settings.event_type_field ?? DEFAULT_TYPE_FIELD[provider];
  // Standard Webhooks: the signed webhook-id header is the idempotency key (the spec's).
  const id = headerEventId ?? at(body, idField);
  const type = at(body, typeField);
  if (typeof id !== "string" || !EVENT_ID.test(id)) {
    throw new VaultError("WEBHOOK_BODY_INVALID", {
      detail: `the event id (${idField}) is missing`,
    });
  }
  if (typeof type !== "string" || !EVENT_TYPE.test(type)) {
    throw new VaultError("WEBHOOK_BODY_INVALID", {
      detail: `the event type (${typeField}) is missing`,
    });
  }
  // The raw scan missed what only parsing reveals: digits written as \u escapes, a number in
  // exponent form, and the Standard Webhooks id header. Every decoded value is scanned too.
  if (
    (headerEventId !== undefined && containsCardNumber(headerEventId)) ||
    someValue(body, (value) =>
      typeof value === "string"
        ? containsCardNumber(value)
        : typeof value === "number" && numberLooksLikeCard(value),
    )
  ) {
    throw new VaultError("WEBHOOK_CARD_DATA");
  }
  const metadata: Record<string, MetadataValue> = {};
  for (const path of KEPT_FIELDS[provider]) {
    const value = at(body, path);
    if (
      typeof value === "number" &&
      Number.isFinite(value) &&
      Math.abs(value) < MAX_METADATA_NUMBER
    )
      metadata[path] = value;
    else if (typeof value === "boolean" || value === null) metadata[path] = value;
    else if (
      typeof value === "string" &&
      value.length <= MAX_METADATA_STRING &&
      findPanLikeRuns(value).length === 0
    ) {
      metadata[path] = value;
    }
  }
  return { providerEventId: id, eventType: type, metadata };
}
