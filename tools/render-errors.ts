// Rewrites the "Problem codes" table of docs/errors.md from the error registry.
import { readFileSync, writeFileSync } from "node:fs";
import { ERRORS } from "../src/errors/registry.js";

const path = new URL("../docs/errors.md", import.meta.url);
const lines = readFileSync(path, "utf8").split("\n");
const heading = lines.indexOf("## Problem codes");
const first = lines.findIndex((line, i) => i > heading && line.startsWith("| `"));
let last = first;
while (lines[last + 1]?.startsWith("| `")) last += 1;
if (heading === -1 || first === -1) throw new Error("docs/errors.md has no problem-code table");
const rows = Object.entries(ERRORS).map(
  ([code, e]) => `| \`${code}\` | ${e.status} | ${e.title} |`,
);
lines.splice(first, last - first + 1, ...rows);
writeFileSync(path, lines.join("\n"));
