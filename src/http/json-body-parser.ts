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
  try {
    return secureJsonParse.parse(text, undefined, {
      protoAction: "error",
      constructorAction: "error",
    });
  } catch (err) {
    const forbidden =
      err instanceof SyntaxError && err.message.includes("forbidden prototype property");
    throw new VaultError(forbidden ? "FORBIDDEN_JSON_KEY" : "MALFORMED_JSON");
  }
}
