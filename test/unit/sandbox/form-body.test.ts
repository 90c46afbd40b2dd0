import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parseFormBody } from "../../../src/sandbox/form-body.js";

const VISA = "4242424242424242";

describe("Stripe-style form bodies", () => {
  it("reads flat fields and one level of brackets into the JSON shape", () => {
    const body = `amount=1000&currency=usd&card[number]=${VISA}&card%5Bexp_month%5D=12&card[name]=Jane+Doe`;
    expect(parseFormBody(body)).toEqual({
      ok: true,
      value: {
        amount: "1000",
        currency: "usd",
        card: { number: VISA, exp_month: "12", name: "Jane Doe" },
      },
    });
  });

  it("round-trips any set of letter-named fields as URLSearchParams encodes them", () => {
    const name = fc.stringMatching(/^[A-Za-z_]{1,12}$/);
    fc.assert(
      fc.property(
        fc.dictionary(name, fc.string()),
        fc.dictionary(name, fc.string()),
        (flat, card) => {
          fc.pre(!("card" in flat) && Object.keys(card).length > 0);
          const params = new URLSearchParams(flat);
          for (const [key, value] of Object.entries(card)) params.append(`card[${key}]`, value);
          const parsed = parseFormBody(params.toString());
          expect(parsed).toEqual({ ok: true, value: { ...flat, card } });
        },
      ),
    );
  });

  it.each([
    ["a key sent twice", "amount=1&amount=2"],
    ["a nested key sent twice", `card[number]=${VISA}&card[number]=${VISA}`],
    ["a value that is also an object", `card=x&card[number]=${VISA}`],
    ["an object that is also a value", `card[number]=${VISA}&card=x`],
    ["deeper nesting", `card[number][x]=${VISA}`],
    ["an empty bracket", `card[]=${VISA}`],
    ["digits in a name", `card${VISA}=1`],
  ])("refuses %s, without repeating a value", (_case, body) => {
    const parsed = parseFormBody(body);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.message).not.toContain(VISA);
  });
});
