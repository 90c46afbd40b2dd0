/**
 * The one error every decryption or integrity failure turns into.
 *
 * A bad tag, a truncated blob, an unknown format version, a context (AAD) that
 * does not match, an unknown DEK id or a key of the wrong length all look the
 * same to the caller: same class, same message, same code, no cause, no detail.
 * Distinguishable failures are an oracle (padding-oracle style attacks, and
 * RFC 9457 problem details that leak which check failed); DESIGN.md: "Every
 * decryption/integrity failure is one generic error".
 */
export class DecryptionError extends Error {
  readonly code = "DECRYPTION_FAILED" as const;

  // No parameters on purpose: nothing a caller has can be attached to it.
  constructor() {
    super("decryption failed");
    this.name = "DecryptionError";
  }
}
