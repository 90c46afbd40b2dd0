import { readFileSync } from "node:fs";
import Fastify from "fastify";
import { registerCaptureFrame } from "../../../src/http/routes/capture-frame.js";
import { createLogger } from "../../../src/log/logger.js";
import { CaptureSessionError } from "../../../src/services/capture/capture-session.js";
import type { BrandTable } from "../../../static/capture/card-rules.js";
import { brandTableFrom } from "../../../static/capture/card-rules.js";

/** The published test cards (shared/testdata/test-cards.json): the only numbers tests spell out. */
export interface TestCardsFile {
  valid: { brand: string; number: string }[];
  invalid_luhn: string[];
}

export const testCards: TestCardsFile = JSON.parse(
  readFileSync(new URL("../../../../shared/testdata/test-cards.json", import.meta.url), "utf8"),
);

/**
 * The brand table exactly as the frame gets it: brands.json from the capture-frame route, which
 * generates it from src/domain/iin-table.ts.
 */
export async function servedBrandTable(): Promise<BrandTable> {
  const app = Fastify();
  registerCaptureFrame(app, {
    sessions: {
      async verify() {
        throw new CaptureSessionError();
      },
    },
    publicOrigin: "https://vault.test",
    logger: createLogger("silent"),
  });
  const res = await app.inject({ method: "GET", url: "/capture/assets/brands.json" });
  await app.close();
  if (res.statusCode !== 200) throw new Error(`brands.json: ${res.statusCode}`);
  return brandTableFrom(res.json());
}
