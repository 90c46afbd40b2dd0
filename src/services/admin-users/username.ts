/**
 * Usernames are compared case-insensitively and after NFKC (full-width letters from an IME are
 * the letters they look like), so "Alice", "ALICE" and "ａｌｉｃｅ" are one account: the code
 * normalises, and a unique index on the normalised form does the rest.
 */
const USERNAME = /^[a-z0-9][a-z0-9._@+-]{2,63}$/;

/** The stored form of a username, or undefined when it is not an acceptable one. */
export function normalizeUsername(input: unknown): string | undefined {
  if (typeof input !== "string" || input.length > 256 || !input.isWellFormed()) return undefined;
  const normalized = input.normalize("NFKC").toLowerCase().normalize("NFKC");
  return USERNAME.test(normalized) ? normalized : undefined;
}
