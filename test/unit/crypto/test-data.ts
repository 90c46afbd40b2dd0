import type { EnvelopeContext } from "../../../src/crypto/envelope.js";

/**
 * Published test card numbers (shared/testdata/test-cards.json), never real
 * cards. Copied as literals so the crypto tests do not depend on a file
 * outside the repository.
 */
export const TEST_PANS = ["4242424242424242", "5555555555554444", "378282246310005"] as const;

export const KEY = Buffer.alloc(32, 0x5a);
export const OTHER_KEY = Buffer.alloc(32, 0xa5);
export const DEK_ID = "key_pan_2025q1";
export const CONTEXT: EnvelopeContext = {
  tenantId: "ten_3f9a",
  objectId: "tok_8Hq2",
  purpose: "pan",
};
