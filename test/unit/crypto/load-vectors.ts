import { readFileSync } from "node:fs";

/** Reads a published test-vector file from test/vectors/ (data, not code). */
export function loadVectors<T>(fileName: string): T {
  const url = new URL(`../../vectors/${fileName}`, import.meta.url);
  return JSON.parse(readFileSync(url, "utf8")) as T;
}

export function hex(value: string): Buffer {
  if (!/^(?:[0-9a-f]{2})*$/i.test(value)) {
    throw new Error(`not hex: ${value.slice(0, 16)}`);
  }
  return Buffer.from(value, "hex");
}
