// Rewrites the generated role matrix in docs/access-control.md from the code's tables.
import { readFileSync, writeFileSync } from "node:fs";
import { MATRIX_END, MATRIX_START, renderAccessMatrix } from "../src/http/access-matrix.js";

const path = new URL("../docs/access-control.md", import.meta.url);
const doc = readFileSync(path, "utf8");
const start = doc.indexOf(MATRIX_START);
const end = doc.indexOf(MATRIX_END);
if (start === -1 || end === -1) throw new Error("docs/access-control.md has no matrix markers");
writeFileSync(
  path,
  doc.slice(0, start) + renderAccessMatrix() + doc.slice(end + MATRIX_END.length),
);
