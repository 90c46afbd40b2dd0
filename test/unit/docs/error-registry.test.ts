import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { PASSWORD_ISSUE_CODES } from "../../../src/auth/passwords.js";
import { DOMAIN_ISSUE_CODES } from "../../../src/domain/field-issue.js";
import { ERRORS } from "../../../src/errors/registry.js";
import { API_KEY_ISSUE_CODES } from "../../../src/http/routes/api-keys.js";
import { SCHEMA_ISSUE_CODES } from "../../../src/http/validation.js";
import { CAPTURE_ISSUE_CODES } from "../../../src/services/capture/capture-session.js";
import { FORWARD_ISSUE_CODES } from "../../../src/services/forward/placeholders.js";
import { KEY_ADMIN_ISSUE_CODES } from "../../../src/services/keys/ceremonies.js";
import { REQUEST_ISSUE_CODES } from "../../../src/services/tokens/tokenize-input.js";
import { EVENT_DESTINATION_ISSUE_CODES } from "../../../src/services/webhooks/outbound/destination-url.js";

const doc = readFileSync(new URL("../../../docs/errors.md", import.meta.url), "utf8");

/** Rows of the markdown table that follows `heading`, as arrays of trimmed cells. */
function tableAfter(heading: string): string[][] {
  const section = doc.split(`## ${heading}`)[1]?.split("\n## ")[0] ?? "";
  return section
    .split("\n")
    .filter((line) => line.startsWith("| `"))
    .map((line) =>
      line
        .slice(1, -1)
        .split(" | ")
        .map((cell) => cell.trim().replace(/^`|`$/g, "")),
    );
}

describe("docs/errors.md is pinned to the code", () => {
  it("lists exactly the registry's problem codes, statuses and titles, in order", () => {
    const documented = tableAfter("Problem codes").map(([code, status, title]) => ({
      code,
      status,
      title,
    }));
    const registry = Object.entries(ERRORS).map(([code, e]) => ({
      code,
      status: String(e.status),
      title: e.title,
    }));
    expect(documented).toEqual(registry);
  });

  it("documents every field error code the parsers and validators can produce, and no others", () => {
    const documented = tableAfter("Field error codes").map(([code]) => code);
    const produced = [
      ...SCHEMA_ISSUE_CODES,
      ...DOMAIN_ISSUE_CODES,
      ...REQUEST_ISSUE_CODES,
      ...KEY_ADMIN_ISSUE_CODES,
      ...CAPTURE_ISSUE_CODES,
      ...API_KEY_ISSUE_CODES,
      ...PASSWORD_ISSUE_CODES,
      ...FORWARD_ISSUE_CODES,
      ...EVENT_DESTINATION_ISSUE_CODES,
    ];
    expect([...documented].sort()).toEqual([...new Set(produced)].sort());
  });

  it("gives every 4xx/5xx code a status in its class and a title without a trailing space", () => {
    for (const [code, entry] of Object.entries(ERRORS)) {
      expect(entry.status, code).toBeGreaterThanOrEqual(400);
      expect(entry.status, code).toBeLessThan(600);
      expect(entry.title, code).toBe(entry.title.trim());
    }
  });
});
