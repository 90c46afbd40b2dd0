/** Types of capture-client.js, for the TypeScript tests that import it. */
import type { CaptureCard } from "./card-rules.js";

export interface JoseForCapture {
  CompactEncrypt: new (
    plaintext: Uint8Array,
  ) => {
    setProtectedHeader(header: Record<string, unknown>): {
      encrypt(key: unknown): Promise<string>;
    };
  };
  importJWK(jwk: Record<string, unknown>, alg: string): Promise<unknown>;
  decodeJwt(token: string): Record<string, unknown>;
}

export type TokenizeResult =
  | {
      ok: true;
      token: string;
      card: { brand: string; last4: string; exp_month: number; exp_year: number };
    }
  | {
      ok: false;
      status: number;
      code: string | undefined;
      errors: { field: string; code: string; message?: string }[];
    };

export const KEY_ALG: "ECDH-ES+A256KW";
export const CONTENT_ENC: "A256GCM";
export const CLAIMS_LIFETIME_SECONDS: number;
export function sessionIdOf(session: string, decodeJwt: JoseForCapture["decodeJwt"]): string;
export function captureKeyOf(jwks: unknown): Record<string, unknown> & { kid: string };
export function captureClaims(input: {
  sessionId: string;
  audience: string;
  nowSeconds: number;
  jti: string;
  card: CaptureCard;
}): Record<string, unknown>;
export function createCaptureClient(options: {
  session: string;
  audience: string;
  baseUrl: string;
  jose: JoseForCapture;
  fetch: (input: URL, init?: RequestInit) => Promise<Response>;
  now: () => number;
  randomUUID: () => string;
}): {
  sessionId: string;
  captureKey(): Promise<{ kid: string; key: unknown }>;
  encryptCard(card: CaptureCard): Promise<string>;
  tokenize(card: CaptureCard): Promise<TokenizeResult>;
};
