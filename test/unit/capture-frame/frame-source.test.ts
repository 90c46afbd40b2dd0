import { readdirSync, readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";

/**
 * Guards on the frame's browser code that a behaviour test cannot see: a token posted to "*"
 * reaches the right parent all the same, and a card written to storage or the console leaves
 * no trace in the page.
 */
const DIR = new URL("../../../static/capture/", import.meta.url);
const sources = readdirSync(DIR)
  .filter((name) => name.endsWith(".js"))
  .map((name) => ({ name, text: readFileSync(new URL(name, DIR), "utf8") }));

describe("the frame's browser modules", () => {
  it("exist", () => {
    expect(sources.map((s) => s.name)).toEqual(
      expect.arrayContaining(["frame.js", "card-rules.js", "card-format.js", "capture-client.js"]),
    );
  });

  it("post to named origins only, never to '*'", () => {
    const frame = sources.find((s) => s.name === "frame.js")?.text ?? "";
    expect(frame).toMatch(/window\.parent\.postMessage\(message, origin\)/);
    for (const { name, text } of sources) {
      expect(text, name).not.toMatch(/postMessage\([^)]*["'`]\*["'`]/);
    }
  });

  it("never build HTML from strings, evaluate code, store data or write to the console", () => {
    const forbidden =
      /\.innerHTML|\.outerHTML\s*=|insertAdjacentHTML|document\.write|\beval\(|new Function|localStorage|sessionStorage|indexedDB|document\.cookie|console\./;
    for (const { name, text } of sources) expect(text, name).not.toMatch(forbidden);
  });
});
