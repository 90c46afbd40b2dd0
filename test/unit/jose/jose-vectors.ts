import { readFileSync } from "node:fs";
import type { JWK } from "jose";

/** Reads a published JOSE vector file from test/vectors/jose/ (data, not code). */
export function loadJoseVectors<T>(fileName: string): T {
  const url = new URL(`../../vectors/jose/${fileName}`, import.meta.url);
  return JSON.parse(readFileSync(url, "utf8")) as T;
}

export interface WycheproofJweTest {
  tcId: number;
  comment: string;
  pt?: string;
  enc: string;
  jwe: string;
  result: "valid" | "invalid";
  flags: string[];
}
export interface WycheproofJweFile {
  numberOfTests: number;
  testGroups: { comment: string; private: JWK; public?: JWK; tests: WycheproofJweTest[] }[];
}

export interface WycheproofJwsTest {
  tcId: number;
  comment: string;
  jws: string;
  result: "valid" | "invalid";
  flags: string[];
}
export interface WycheproofJwsFile {
  numberOfTests: number;
  numberOfTestsInSource: number;
  testGroups: { comment: string; private: JWK; public?: JWK; tests: WycheproofJwsTest[] }[];
}
export interface WycheproofJwkFile {
  numberOfTests: number;
  testGroups: {
    comment: string;
    private: { keys: JWK[] };
    public?: { keys: JWK[] };
    tests: WycheproofJwsTest[];
  }[];
}

export interface Rfc7520Example {
  id: string;
  kind: "jws" | "jwe" | "nested";
  alg: string;
  enc?: string;
  key: JWK;
  payload?: string;
  plaintext?: string;
  password?: string;
  compact: string;
  innerCompact?: string;
  signingKey?: JWK;
}
export interface Rfc7520File {
  examples: Rfc7520Example[];
}

/** The protected header of a compact object, decoded leniently (test-side only). */
export function headerOf(compact: string): Record<string, unknown> | undefined {
  try {
    const segment = compact.split(".")[0] ?? "";
    return JSON.parse(Buffer.from(segment, "base64url").toString("utf8")) as Record<
      string,
      unknown
    >;
  } catch {
    return undefined;
  }
}
