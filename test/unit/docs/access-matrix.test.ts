import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { ROLE_NAMES, ROLES, SCOPES } from "../../../src/domain/scopes.js";
import { MATRIX_END, MATRIX_START, renderAccessMatrix } from "../../../src/http/access-matrix.js";
import { ROUTES } from "../../../src/http/route-table.js";

const doc = readFileSync(new URL("../../../docs/access-control.md", import.meta.url), "utf8");

describe("docs/access-control.md is pinned to the code", () => {
  it("holds exactly the role matrix rendered from ROLES and ROUTES (npm run docs:access)", () => {
    const start = doc.indexOf(MATRIX_START);
    const end = doc.indexOf(MATRIX_END);
    expect(start).toBeGreaterThan(-1);
    expect(end).toBeGreaterThan(start);
    expect(doc.slice(start, end + MATRIX_END.length)).toBe(renderAccessMatrix());
  });

  it("the matrix names every route and every role", () => {
    const matrix = renderAccessMatrix();
    for (const spec of ROUTES) expect(matrix).toContain(`\`${spec.method} ${spec.url}\``);
    for (const role of ROLE_NAMES) expect(matrix).toContain(`| \`${role}\` |`);
  });

  it("documents every scope in the scopes table", () => {
    const section = doc.split("## Scopes")[1]?.split("\n## ")[0] ?? "";
    const documented = section
      .split("\n")
      .filter((line) => line.startsWith("| `"))
      .map((line) => line.slice(3, line.indexOf("`", 3)));
    expect(documented).toEqual([...SCOPES]);
  });

  it("every role's scopes exist, and only operator holds sys:admin", () => {
    for (const role of ROLE_NAMES) {
      for (const scope of ROLES[role]) expect(SCOPES).toContain(scope);
      expect((ROLES[role] as readonly string[]).includes("sys:admin")).toBe(role === "operator");
    }
  });
});
