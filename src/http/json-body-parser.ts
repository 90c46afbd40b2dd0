import { isUtf8 } from "node:buffer";
import secureJsonParse from "secure-json-parse";
import { VaultError } from "../errors/registry.js";

/**
 * The only body parser: `application/json`, parsed from the raw bytes. Invalid UTF-8 is refused
 * rather than silently replaced; `__proto__` and `constructor.prototype` keys are refused
 * (prototype pollution); a syntax error becomes MALFORMED_JSON without the parser's message,
 * which would quote part of the body (and so perhaps a card number).
 */
export function parseJsonBody(body: Buffer): unknown {
  if (!isUtf8(body)) throw new VaultError("INVALID_UTF8");
  const text = body.toString("utf8");
  if (text.trim() === "") throw new VaultError("MALFORMED_JSON");
  let value: unknown;
  try {
    value = secureJsonParse.parse(text, undefined, {
      protoAction: "error",
      constructorAction: "error",
    });
  } catch (err) {
    const forbidden =
      err instanceof SyntaxError && err.message.includes("forbidden prototype property");
    throw new VaultError(forbidden ? "FORBIDDEN_JSON_KEY" : "MALFORMED_JSON");
  }
  // Valid UTF-8 bytes cannot hold a lone surrogate or a NUL; only a \u escape can. The parsed
  // strings are walked only when the text has such an escape (the common case costs one scan).
  if (SUSPECT_ESCAPE.test(text) && !allStringsStorable(value)) {
    throw new VaultError("INVALID_UNICODE");
  }
  return value;
}

const SUSPECT_ESCAPE = /\\u(?:[dD][89a-fA-F]|0000)/;

/**
 * True when every string (keys included) is well-formed Unicode without NUL: PostgreSQL stores
 * neither, and a lone surrogate would not survive UTF-8 encoding of the card payload.
 */
function allStringsStorable(value: unknown): boolean {
  if (typeof value === "string") return value.isWellFormed() && !value.includes("\u0000");
  if (Array.isArray(value)) return value.every(allStringsStorable);
  if (value !== null && typeof value === "object") {
    return Object.entries(value).every(
      ([key, item]) => allStringsStorable(key) && allStringsStorable(item),
    );
  }
  return true;
}
