import { timingSafeEqual } from "node:crypto";
import { utf8Exact } from "./utf8.js";

/**
 * Constant-time equality for secrets (API keys, MACs, signatures): the time
 * taken depends only on the lengths, never on where the first difference is
 * (STYLE.md: timingSafeEqual after a length check). Different lengths return
 * false without throwing; the length itself is not treated as secret.
 *
 * Strings are compared as UTF-8. A string that is not well-formed Unicode
 * (lone surrogate) equals nothing, because its UTF-8 form would be lossy and
 * could collide with a different string.
 */
export function constantTimeEqual(a: Uint8Array | string, b: Uint8Array | string): boolean {
  const left = typeof a === "string" ? utf8Exact(a) : a;
  const right = typeof b === "string" ? utf8Exact(b) : b;
  if (left === undefined || right === undefined || left.length !== right.length) {
    return false;
  }
  return timingSafeEqual(left, right);
}
