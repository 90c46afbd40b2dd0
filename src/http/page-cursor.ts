import { VaultError } from "../errors/registry.js";

/**
 * Keyset-paging cursors: `base64url(<ISO time>|<id>)` of the last row of a page. Opaque to
 * clients, never trusted: a decoded cursor must hold a vault id and a time the database can
 * store, so a crafted one is a 400, never a query error (5xx).
 */
export function encodeCursor(at: Date, id: string): string {
  return Buffer.from(`${at.toISOString()}|${id}`, "utf8").toString("base64url");
}

const ID = /^[a-z][a-z0-9]{0,15}_[A-Za-z0-9]{1,64}$/;
const EARLIEST = Date.UTC(1970, 0, 1);
const LATEST = Date.UTC(9999, 11, 31);

export function decodeCursor(cursor: string): { at: Date; id: string } {
  const [at, id, extra] = Buffer.from(cursor, "base64url").toString("utf8").split("|");
  const date = new Date(at ?? "");
  const time = date.getTime();
  if (
    id === undefined ||
    extra !== undefined ||
    !ID.test(id) ||
    Number.isNaN(time) ||
    time < EARLIEST ||
    time > LATEST
  ) {
    throw new VaultError("VALIDATION_FAILED", {
      errors: [{ field: "cursor", code: "INVALID_FORMAT", message: "The cursor is not valid." }],
    });
  }
  return { at: date, id };
}
