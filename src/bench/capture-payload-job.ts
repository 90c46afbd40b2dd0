import type { JWK } from "jose";
import type { TestCard } from "./test-cards.js";

/** What the main thread asks of a payload worker: one capture body per card, for one session. */
export interface PayloadJob {
  readonly id: number;
  /** The session JWS, sent beside each payload. */
  readonly session: string;
  /** The session's id: the payload's `iss`. */
  readonly issuer: string;
  /** The vault's public origin: the payload's `aud`. */
  readonly audience: string;
  readonly cards: readonly TestCard[];
}

export type PayloadReply =
  | { readonly id: number; readonly lines: readonly string[] }
  | { readonly id: number; readonly error: string };

/** The vault's published ECDH-ES+A256KW public key, with its kid. */
export type CaptureJwk = JWK & { readonly kid: string };

export interface PayloadWorkerData {
  readonly jwk: CaptureJwk;
}

/** The capture frame's default key management (issue 4; RFC 7518 §4.6). */
export const CAPTURE_KEY_ALG = "ECDH-ES+A256KW";
/** Issue 4: a capture payload lives at most 5 minutes (its exp is iat + 300). */
export const PAYLOAD_LIFETIME_SECONDS = 300;
