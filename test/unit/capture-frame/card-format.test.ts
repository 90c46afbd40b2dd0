import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import type { FieldEdit } from "../../../static/capture/card-format.js";
import {
  caretAfterDigits,
  digitsOf,
  editCvc,
  editExpiry,
  editNumber,
  formatExpiry,
  formatNumber,
} from "../../../static/capture/card-format.js";
import type { BrandTable } from "../../../static/capture/card-rules.js";
import { detectBrand, rulesFor } from "../../../static/capture/card-rules.js";
import { servedBrandTable, testCards } from "./brand-table.js";

let table: BrandTable;
beforeAll(async () => {
  table = await servedBrandTable();
});

const cardOf = (brand: string) => testCards.valid.find((c) => c.brand === brand)?.number ?? "";

/** The number field's edit, with the brand rules the frame uses. */
function number(edit: FieldEdit) {
  return editNumber(
    edit,
    (digits) => detectBrand(table, digits),
    (brand) => Math.max(...rulesFor(table, brand).lengths),
  );
}

/** Types `text` one character at a time at the caret, as a person would. */
function typeInto(
  edit: (e: FieldEdit) => { value: string; caret: number; digits: string },
  text: string,
  start = { value: "", caret: 0 },
) {
  let state = start;
  for (const char of text) {
    const value = state.value.slice(0, state.caret) + char + state.value.slice(state.caret);
    const result = edit({ value, caret: state.caret + 1, inputType: "insertText" });
    state = { value: result.value, caret: result.caret };
  }
  return state;
}

/** Presses Backspace at the caret. */
function backspace(
  edit: (e: FieldEdit) => { value: string; caret: number },
  state: { value: string; caret: number },
) {
  const value = state.value.slice(0, state.caret - 1) + state.value.slice(state.caret);
  return edit({
    value,
    caret: state.caret - 1,
    inputType: "deleteContentBackward",
    previousDigits: digitsOf(state.value),
  });
}

describe("formatNumber", () => {
  it("groups 4-4-4-4 and Amex 4-6-5, 19 digits as 4-4-4-4-3", () => {
    expect(formatNumber(cardOf("visa"), "visa")).toBe("4242 4242 4242 4242");
    expect(formatNumber(cardOf("amex"), "amex")).toBe("3782 822463 10005");
    const unionpay19 = testCards.valid.find((c) => c.number.length === 19)?.number ?? "";
    expect(formatNumber(unionpay19, "unionpay")).toMatch(/^\d{4} \d{4} \d{4} \d{4} \d{3}$/);
    expect(formatNumber("42", "visa")).toBe("42");
    expect(formatNumber("", "visa")).toBe("");
  });
});

describe("editNumber", () => {
  it("formats while typing, keeps the caret at the end, and detects the brand", () => {
    const typed = typeInto(number, cardOf("amex"));
    expect(typed).toEqual({ value: "3782 822463 10005", caret: 17 });
    expect(number({ value: typed.value, caret: typed.caret }).brand).toBe("amex");
  });

  it("stops at the brand's longest length (15 for Amex, 19 otherwise)", () => {
    expect(typeInto(number, `${cardOf("amex")}999`).value).toBe("3782 822463 10005");
    expect(digitsOf(typeInto(number, `${cardOf("visa")}${"1".repeat(10)}`).value)).toHaveLength(19);
  });

  it("keeps the caret beside the digit typed in the middle of the number", () => {
    // "4242 4242 4242 424" with the caret after the 6th digit ("4242 42|42 …"): type "9".
    const start = { value: "4242 4242 4242 424", caret: 7 };
    const typed = typeInto(number, "9", start);
    expect(typed.value).toBe("4242 4294 2424 2424");
    expect(typed.caret).toBe(8);
  });

  it("deletes the digit before a separator when Backspace lands on the separator", () => {
    // "4242 4242|" → Backspace → "4242 424|"; then caret right after "4242 " → Backspace removes "2".
    const state = { value: "4242 4242", caret: 5 };
    const result = backspace(number, state);
    expect(result.value).toBe("4244 242");
    expect(result.caret).toBe(3);
  });

  it("turns any paste (dashes, spaces, letters) into the same grouped digits", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...testCards.valid.map((c) => c.number)),
        fc.constantFrom(" ", "-", "  ", ""),
        (pan, separator) => {
          const pasted = (pan.match(/.{1,4}/g) ?? []).join(separator);
          const result = number({
            value: pasted,
            caret: pasted.length,
            inputType: "insertFromPaste",
          });
          expect(result.digits).toBe(pan);
          expect(result.value).toBe(formatNumber(pan, detectBrand(table, pan)));
          expect(result.caret).toBe(result.value.length);
        },
      ),
    );
  });

  it("keeps the caret after the same digits for any edit", () => {
    fc.assert(
      fc.property(
        fc.string({ unit: fc.constantFrom(..."0123456789 -"), maxLength: 30 }),
        fc.nat(),
        (value, at) => {
          const caret = at % (value.length + 1);
          const result = number({ value, caret, inputType: "insertText" });
          const before = Math.min(digitsOf(value.slice(0, caret)).length, result.digits.length);
          expect(digitsOf(result.value.slice(0, result.caret))).toBe(
            result.digits.slice(0, before),
          );
        },
      ),
    );
  });
});

describe("editExpiry", () => {
  it("formats MM / YY while typing", () => {
    expect(typeInto(editExpiry, "1228")).toEqual({ value: "12 / 28", caret: 7 });
    expect(typeInto(editExpiry, "12").value).toBe("12");
    expect(typeInto(editExpiry, "12345").value).toBe("12 / 34");
  });

  it("adds the leading zero a month of 2-9 must have", () => {
    expect(typeInto(editExpiry, "4")).toEqual({ value: "04", caret: 2 });
    expect(typeInto(editExpiry, "428")).toEqual({ value: "04 / 28", caret: 7 });
  });

  it("reads autofilled MM/YYYY and M/YY", () => {
    expect(editExpiry({ value: "12/2028", caret: 7 }).value).toBe("12 / 28");
    expect(editExpiry({ value: "1/28", caret: 4 }).value).toBe("01 / 28");
    expect(formatExpiry("1")).toBe("1");
  });

  it("lets Backspace go back through the separator", () => {
    let state = { value: "12 / 2", caret: 6 };
    state = backspace(editExpiry, state);
    expect(state).toMatchObject({ value: "12", caret: 2 });
    // The caret just after " / " of "12 / 28": Backspace takes the month's last digit.
    const result = backspace(editExpiry, { value: "12 / 28", caret: 5 });
    expect(result.value).toBe("12 / 8");
    expect(result.caret).toBe(1);
  });
});

describe("editCvc", () => {
  it("keeps digits only, up to the brand's length", () => {
    expect(editCvc({ value: "12a3", caret: 4 }, 3)).toEqual({
      value: "123",
      caret: 3,
      digits: "123",
    });
    expect(editCvc({ value: "12345", caret: 5 }, 4).value).toBe("1234");
  });
});

describe("caretAfterDigits", () => {
  it("finds the index after the n-th digit", () => {
    expect(caretAfterDigits("4242 4242", 0)).toBe(0);
    expect(caretAfterDigits("4242 4242", 4)).toBe(4);
    expect(caretAfterDigits("4242 4242", 5)).toBe(6);
    expect(caretAfterDigits("4242 4242", 99)).toBe(9);
  });
});
