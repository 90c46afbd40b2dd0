import { describe, expect, it } from "vitest";
import {
  compileForwardTemplate,
  type ForwardTemplateInput,
  renderBody,
  renderHeaders,
  TEMPLATE_LIMITS,
} from "../../../src/services/forward/forward-template.js";
import type { CardValues } from "../../../src/services/forward/placeholders.js";

const T1 = "tok_AAAAAAAAAAAAAAAAAAAAAA";
const T2 = "tok_BBBBBBBBBBBBBBBBBBBBBB";
const PAN = "4242424242424242";
const CARDS: Record<string, CardValues> = {
  [T1]: { number: PAN, exp_month: 3, exp_year: 2031, name: "Ada Lovelace", cvc: "737" },
  [T2]: {
    number: "5555555555554444",
    exp_month: 11,
    exp_year: 2030,
    name: undefined,
    cvc: undefined,
  },
};
const valuesOf = (id: string) => CARDS[id] as CardValues;
const URL = "https://processor.test/v1/charges";

function compile(input: Partial<ForwardTemplateInput>) {
  return compileForwardTemplate({ url: URL, method: "POST", ...input });
}

function compiled(input: Partial<ForwardTemplateInput>) {
  const result = compile(input);
  if (!result.ok) throw new Error(JSON.stringify(result.issues));
  return result.template;
}

function issuesOf(input: Partial<ForwardTemplateInput>) {
  const result = compile(input);
  if (result.ok) throw new Error("expected the template to be refused");
  return result.issues;
}

describe("forward templates: JSON bodies", () => {
  it("replaces a value that is exactly one placeholder, keeping the field's JSON type", () => {
    const template = compiled({
      body: {
        card: {
          number: `{{ ${T1}.number }}`,
          exp_month: `{{${T1}.exp_month}}`,
          exp_year: `{{  ${T1}.exp_year  }}`,
          cvc: `{{ ${T1}.cvc }}`,
          name: `{{ ${T1}.name }}`,
        },
        amount: 1000,
        capture: true,
        meta: null,
        list: [`{{ ${T2}.number }}`, 1],
      },
    });
    expect(template.tokenIds).toEqual([T1, T2]);
    expect(template.fields).toEqual(["number", "exp_month", "exp_year", "name", "cvc"]);
    expect(template.cvcTokenIds).toEqual([T1]);
    const body = JSON.parse(String(renderBody(template.body, valuesOf)));
    expect(body).toEqual({
      card: { number: PAN, exp_month: 3, exp_year: 2031, cvc: "737", name: "Ada Lovelace" },
      amount: 1000,
      capture: true,
      meta: null,
      list: ["5555555555554444", 1],
    });
  });

  it("interpolates placeholders inside longer strings (month as two digits)", () => {
    const template = compiled({
      body: {
        expiry: `{{ ${T1}.exp_month }}/{{ ${T1}.exp_year }}`,
        note: `card ${"{{"}${T2}.number}} ok`,
      },
    });
    const body = JSON.parse(String(renderBody(template.body, valuesOf)));
    expect(body).toEqual({ expiry: "03/2031", note: "card 5555555555554444 ok" });
  });

  it("an absent name is the empty string", () => {
    const template = compiled({ body: { name: `{{ ${T2}.name }}`, n: `{{ ${T2}.number }}` } });
    expect(JSON.parse(String(renderBody(template.body, valuesOf))).name).toBe("");
  });

  it("refuses an unknown field, naming the JSON path and never the value", () => {
    const issues = issuesOf({
      body: { card: { cvv: `{{ ${T1}.cvv }}` }, list: ["x", `{{ ${T1}.pan }}`] },
    });
    expect(issues).toEqual([
      expect.objectContaining({ field: "body.card.cvv", code: "PLACEHOLDER_FIELD_UNKNOWN" }),
      expect.objectContaining({ field: "body.list.1", code: "PLACEHOLDER_FIELD_UNKNOWN" }),
    ]);
    expect(JSON.stringify(issues)).not.toContain(T1);
  });

  it("refuses any other {{…}}: bad token ids, no field, unclosed braces, pasted card numbers", () => {
    for (const value of [
      "{{ tok_short.number }}",
      `{{ ${T1} }}`,
      `{{ ${T1}.number`,
      `{{ ${PAN} }}`,
      "{{}}",
      `{{ ${T1}.number.extra }}`,
    ]) {
      const issues = issuesOf({ body: { x: value } });
      expect(issues, value).toHaveLength(1);
      expect(issues[0]?.field).toBe("body.x");
      expect(issues[0]?.code).toMatch(/^PLACEHOLDER_(INVALID|FIELD_UNKNOWN)$/);
      expect(JSON.stringify(issues)).not.toContain(PAN);
    }
  });

  it("a key that could hold a card number is shown as * in the path", () => {
    const issues = issuesOf({ body: { [PAN]: `{{ ${T1}.bogus }}` } });
    expect(issues[0]?.field).toBe("body.*");
  });

  it("refuses placeholders in the URL and in object keys", () => {
    expect(
      issuesOf({ url: `${URL}?n={{ ${T1}.number }}`, body: { a: `{{ ${T1}.number }}` } }),
    ).toEqual([expect.objectContaining({ field: "url", code: "PLACEHOLDER_NOT_ALLOWED" })]);
    expect(issuesOf({ body: { [`{{ ${T1}.number }}`]: `{{ ${T1}.number }}` } })[0]?.code).toBe(
      "PLACEHOLDER_NOT_ALLOWED",
    );
  });

  it("requires at least one placeholder", () => {
    expect(issuesOf({ body: { amount: 1 } })[0]?.code).toBe("PLACEHOLDER_REQUIRED");
  });

  it(`caps distinct tokens at ${TEMPLATE_LIMITS.maxTokens} and placeholders at ${TEMPLATE_LIMITS.maxPlaceholders}`, () => {
    const ids = Array.from(
      { length: 11 },
      (_, i) => `tok_${String(i).padStart(2, "0")}${"A".repeat(20)}`,
    );
    const ten = Object.fromEntries(
      ids.slice(0, 10).map((id, i) => [`c${i}`, `{{ ${id}.number }}`]),
    );
    expect(compile({ body: ten }).ok).toBe(true);
    const eleven = Object.fromEntries(ids.map((id, i) => [`c${i}`, `{{ ${id}.number }}`]));
    expect(issuesOf({ body: eleven })).toEqual([
      expect.objectContaining({ field: "body", code: "TOO_MANY_TOKENS" }),
    ]);
    const many = Array.from({ length: 101 }, () => `{{ ${T1}.number }}`);
    expect(issuesOf({ body: many })[0]?.code).toBe("TOO_MANY_PLACEHOLDERS");
  });

  it("refuses a body nested deeper than the limit", () => {
    let deep: unknown = `{{ ${T1}.number }}`;
    for (let i = 0; i < 40; i++) deep = { d: deep };
    expect(issuesOf({ body: deep })[0]?.code).toBe("TEMPLATE_TOO_DEEP");
  });

  it("refuses a body on GET", () => {
    expect(issuesOf({ method: "GET", body: { n: `{{ ${T1}.number }}` } })[0]?.code).toBe(
      "BODY_NOT_ALLOWED",
    );
  });
});

describe("forward templates: form bodies", () => {
  const form = "application/x-www-form-urlencoded" as const;

  it("fills form values and encodes them", () => {
    const template = compiled({
      content_type: form,
      body: {
        "card[number]": `{{ ${T1}.number }}`,
        "card[exp]": `{{${T1}.exp_month}}/{{${T1}.exp_year}}`,
        amount: "1000",
      },
    });
    const text = String(renderBody(template.body, valuesOf));
    expect(Object.fromEntries(new URLSearchParams(text))).toEqual({
      "card[number]": PAN,
      "card[exp]": "03/2031",
      amount: "1000",
    });
    expect(renderHeaders(template, form, valuesOf)["content-type"]).toBe(form);
  });

  it("refuses non-string form values and non-object form bodies", () => {
    expect(issuesOf({ content_type: form, body: { n: `{{ ${T1}.number }}`, a: 1 } })).toEqual([
      expect.objectContaining({ field: "body.a", code: "FORM_VALUE_INVALID" }),
    ]);
    expect(issuesOf({ content_type: form, body: [`{{ ${T1}.number }}`] })[0]?.code).toBe(
      "FORM_VALUE_INVALID",
    );
  });
});

describe("forward templates: headers", () => {
  it("fills header values (interpolated) and sets Content-Type from content_type", () => {
    const template = compiled({
      headers: { Authorization: `Basic {{ ${T1}.number }}:x`, "Idempotency-Key": "abc" },
      body: { n: `{{ ${T1}.number }}` },
    });
    expect(renderHeaders(template, undefined, valuesOf)).toEqual({
      authorization: `Basic ${PAN}:x`,
      "idempotency-key": "abc",
      "content-type": "application/json",
    });
  });

  it("a template with placeholders in headers only is enough", () => {
    const template = compiled({ method: "GET", headers: { authorization: `{{ ${T1}.cvc }}` } });
    expect(template.cvcTokenIds).toEqual([T1]);
    expect(template.body.kind).toBe("none");
    expect(renderHeaders(template, undefined, valuesOf)).toEqual({ authorization: "737" });
  });

  it("refuses hop-by-hop, unknown and Content-Type headers, and CR/LF in values", () => {
    const issues = issuesOf({
      headers: {
        Host: "x",
        "Transfer-Encoding": "chunked",
        "X-Evil": "1",
        "Content-Type": "text/plain",
        Authorization: "a\r\nX-Injected: 1",
      },
      body: { n: `{{ ${T1}.number }}` },
    });
    expect(issues.map((i) => [i.field, i.code])).toEqual([
      ["headers.host", "HEADER_NOT_ALLOWED"],
      ["headers.transfer-encoding", "HEADER_NOT_ALLOWED"],
      ["headers.x-evil", "HEADER_NOT_ALLOWED"],
      ["headers.content-type", "HEADER_NOT_ALLOWED"],
      ["headers.authorization", "HEADER_NOT_ALLOWED"],
    ]);
  });

  it("refuses an unknown field in a header value", () => {
    expect(issuesOf({ headers: { authorization: `{{ ${T1}.secret }}` } })).toEqual([
      expect.objectContaining({
        field: "headers.authorization",
        code: "PLACEHOLDER_FIELD_UNKNOWN",
      }),
    ]);
  });
});
