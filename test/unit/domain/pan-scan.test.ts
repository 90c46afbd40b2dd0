import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { luhnValid } from "../../../src/domain/luhn.js";
import { findPanLikeRuns, scrubPans } from "../../../src/domain/pan.js";
import { digitsArb, testCard, testCards, withCheckDigit } from "./test-cards.js";

const visa = testCard("visa");
const amex = testCard("amex");
const unionpay19 = testCards.valid.map((c) => c.number).find((n) => n.length === 19) ?? "";

function groupsOf4(digits: string, separator: string): string {
  return digits.match(/.{1,4}/g)?.join(separator) ?? "";
}

/** First 6 and last 4 digits kept, separators kept, everything else starred. */
function expectedMask(run: string): string {
  const total = run.replace(/[^0-9]/g, "").length;
  let seen = 0;
  return run.replace(/[0-9]/g, (d) => (seen++ < 6 || seen > total - 4 ? d : "*"));
}

describe("scrubPans", () => {
  it("masks plain runs to first 6 + stars + last 4", () => {
    expect(scrubPans(`card ${visa} ok`)).toBe("card 424242******4242 ok");
    expect(scrubPans(`pan=${visa}&x=1`)).toBe("pan=424242******4242&x=1");
    expect(scrubPans(`{"n":"${amex}"}`)).toBe('{"n":"378282*****0005"}');
  });

  it("masks every published valid card and leaves the invalid_luhn ones", () => {
    for (const { number } of testCards.valid) {
      expect(scrubPans(`a ${number} b`)).toBe(`a ${expectedMask(number)} b`);
    }
    for (const number of testCards.invalid_luhn)
      expect(scrubPans(`a ${number} b`)).toBe(`a ${number} b`);
  });

  it("masks numbers written in groups with spaces or dashes", () => {
    expect(scrubPans(`x ${groupsOf4(visa, " ")} y`)).toBe("x 4242 42** **** 4242 y");
    expect(scrubPans(`x ${groupsOf4(visa, "-")} y`)).toBe("x 4242-42**-****-4242 y");
    const amexGrouped = `${amex.slice(0, 4)} ${amex.slice(4, 10)} ${amex.slice(10)}`;
    expect(scrubPans(amexGrouped)).toBe("3782 82**** *0005");
    expect(scrubPans(groupsOf4(unionpay19, " "))).toBe("6205 50** **** ***0 004");
    expect(scrubPans(groupsOf4(testCard("mastercard"), " - "))).toBe(
      groupsOf4(testCard("mastercard"), " - "),
    );
  });

  it("still finds a grouped card with other digit groups before or after it", () => {
    expect(scrubPans(`${groupsOf4(visa, " ")} 2030 `)).toMatch(/^4242 42\*\* \*\*\*\* /);
    expect(scrubPans(`7 ${groupsOf4(visa, " ")}`)).not.toContain(groupsOf4(visa, " "));
    const run = findPanLikeRuns(`ref 1234 ${groupsOf4(visa, "-")}.`);
    expect(run.at(-1)?.end).toBe(`ref 1234 ${groupsOf4(visa, "-")}`.length);
  });

  it("leaves runs of 20+ digits, short runs and non-Luhn runs alone", () => {
    expect(scrubPans(`id ${visa}0 end`)).toBe(`id ${visa}0 end`);
    expect(scrubPans("order 1234 5678 total 42")).toBe("order 1234 5678 total 42");
    expect(scrubPans(testCards.invalid_luhn[0] ?? "")).toBe(testCards.invalid_luhn[0]);
  });

  it("reports spans with exact offsets", () => {
    const text = `a${visa}b ${groupsOf4(visa, " ")}`;
    expect(findPanLikeRuns(text)).toEqual([
      { start: 1, end: 17 },
      { start: 19, end: text.length },
    ]);
  });

  it("masks every Luhn-valid 13-19 digit run in random text and nothing else", () => {
    const filler = fc.string({ unit: fc.constantFrom(...'ab -_:/.,;"=é\n'), minLength: 2 });
    const panRun = fc
      .integer({ min: 13, max: 19 })
      .chain((n) => digitsArb(n - 1).map(withCheckDigit));
    const otherRun = digitsArb(1, 25).filter(
      (d) => d.length < 13 || d.length > 19 || !luhnValid(d),
    );
    const segments = fc.array(fc.tuple(fc.oneof(panRun, otherRun), filler), { maxLength: 8 });
    fc.assert(
      fc.property(filler, segments, (head, parts) => {
        const text = head + parts.map(([run, sep]) => run + sep).join("");
        const expected =
          head +
          parts
            .map(
              ([run, sep]) =>
                (run.length >= 13 && run.length <= 19 && luhnValid(run) ? expectedMask(run) : run) +
                sep,
            )
            .join("");
        expect(scrubPans(text)).toBe(expected);
      }),
    );
  });

  it("masks random grouped cards, keeping only the first 6 and last 4 digits", () => {
    const grouped = fc
      .tuple(fc.integer({ min: 13, max: 19 }), fc.constantFrom(" ", "-"))
      .chain(([n, sep]) => digitsArb(n - 1).map((d) => groupsOf4(withCheckDigit(d), sep)));
    const filler = fc.string({ unit: fc.constantFrom(..."ab:/=x"), maxLength: 5 });
    fc.assert(
      fc.property(filler, grouped, filler, (before, card, after) => {
        const scrubbed = scrubPans(`${before}${card}${after}`);
        expect(scrubbed).toBe(`${before}${expectedMask(card)}${after}`);
      }),
    );
  });

  it("keeps the length and every non-digit, and only ever replaces digits by '*'", () => {
    const text = fc.string({ unit: fc.constantFrom(..."0123456789 -x"), maxLength: 120 });
    fc.assert(
      fc.property(text, (input) => {
        const output = scrubPans(input);
        expect(output).toHaveLength(input.length);
        [...input].forEach((char, i) => {
          const out = output.charAt(i);
          if (out !== char) expect(/[0-9]/.test(char) && out === "*").toBe(true);
        });
      }),
    );
  });

  it("handles large inputs in one pass", () => {
    const big = `${visa} `.repeat(20_000) + "1234 ".repeat(20_000);
    const scrubbed = scrubPans(big);
    expect(scrubbed).toHaveLength(big.length);
    expect(scrubbed).not.toContain(visa);
  });
});
