import { describe, expect, it } from "vitest";
import {
  directChargeBody,
  forwardRequestBody,
  PROCESSOR_CHARGES_PATH,
} from "../../../src/bench/forward-bodies.js";
import type { ForwardTemplateInput } from "../../../src/services/forward/forward-template.js";
import {
  compileForwardTemplate,
  renderBody,
  renderHeaders,
} from "../../../src/services/forward/forward-template.js";

const CARD = { number: "4242424242424242", exp_month: 12, exp_year: 2031 };
const TOKEN = "tok_3x9Ge1kJ0mQvTz4rWb7LcA";
const ORIGIN = "https://localhost:8443";

describe("the forward bench's two bodies", () => {
  const request = JSON.parse(forwardRequestBody(ORIGIN, TOKEN)) as ForwardTemplateInput;

  it("send the processor the same bytes through the vault as directly", () => {
    const compiled = compileForwardTemplate(request);
    if (!compiled.ok) throw new Error(JSON.stringify(compiled.issues));
    const values = { ...CARD, name: undefined, cvc: undefined };
    const rendered = renderBody(compiled.template.body, (id) => {
      expect(id).toBe(TOKEN);
      return values;
    });
    expect(rendered?.toString("utf8")).toBe(directChargeBody(CARD));
    expect(renderHeaders(compiled.template, request.content_type, () => values)).toEqual({
      "content-type": "application/json",
    });
  });

  it("name the processor's charges path and only the number and expiry (never the CVC)", () => {
    expect(request.url).toBe(`${ORIGIN}${PROCESSOR_CHARGES_PATH}`);
    expect(request.method).toBe("POST");
    const compiled = compileForwardTemplate(request);
    expect(compiled.ok && compiled.template.fields).toEqual(["number", "exp_month", "exp_year"]);
    expect(compiled.ok && compiled.template.cvcTokenIds).toEqual([]);
  });

  it("keep the card out of the forward request: only the token's placeholders", () => {
    expect(forwardRequestBody(ORIGIN, TOKEN)).not.toContain(CARD.number);
    expect(directChargeBody(CARD)).toContain(CARD.number);
  });
});
