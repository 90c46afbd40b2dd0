import { readFileSync } from "node:fs";
import type { Clock } from "../../../src/services/clock.js";

/** A clock stuck at `unixSeconds` (plus `extraMs`), so window edges are exact. */
export function clockAt(unixSeconds: number, extraMs = 0): Clock {
  return { now: () => new Date(unixSeconds * 1000 + extraMs) };
}

/** Reads a published vector file from test/vectors/webhooks/ (data, not code). */
export function loadWebhookVectors<T>(fileName: string): T {
  const url = new URL(`../../vectors/webhooks/${fileName}`, import.meta.url);
  return JSON.parse(readFileSync(url, "utf8")) as T;
}

/**
 * A body as a processor sends it: spacing and key order that `JSON.stringify(JSON.parse(…))`
 * does not reproduce, a number beyond 2^53 and a non-ASCII name, so re-serialization changes
 * the bytes (the bug raw-byte verification exists to avoid).
 */
export const PROCESSOR_BODY = Buffer.from(
  '{\n  "id": "evt_1NG8Du2eZvKYlo2CUI79vXWy",\n  "object": "event",\n  "amount": 12345678901234567890,\n  "type": "payment_intent.succeeded",\n  "data": { "object": { "name": "Zo\\u00eb" } }\n}',
  "utf8",
);

/** Parses and re-serializes, as a framework's JSON body parser plus `JSON.stringify` would. */
export function reserialized(body: Buffer): Buffer {
  return Buffer.from(JSON.stringify(JSON.parse(body.toString("utf8"))), "utf8");
}

/** Flips one bit of one byte (at `index`, default the middle). */
export function withOneByteChanged(body: Buffer, index = Math.floor(body.length / 2)): Buffer {
  const copy = Buffer.from(body);
  copy[index] = copy[index]! ^ 0x01;
  return copy;
}

export const NOW = 1_760_000_000;
