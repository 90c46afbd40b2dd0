/**
 * UTF-8 encoding that refuses to be lossy.
 *
 * `Buffer.from(s, "utf8")` silently turns a lone surrogate into U+FFFD, so two
 * different strings ("\uD800" and "\uFFFD") would encode to the same bytes. For
 * AAD and keyed fingerprints that would be a collision an attacker can choose,
 * so anything feeding a MAC goes through here instead.
 *
 * @returns the bytes, or undefined when the string is not well-formed Unicode.
 */
export function utf8Exact(value: string): Buffer | undefined {
  const bytes = Buffer.from(value, "utf8");
  return bytes.toString("utf8") === value ? bytes : undefined;
}
