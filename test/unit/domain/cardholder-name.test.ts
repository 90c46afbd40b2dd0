import { describe, expect, it } from "vitest";
import { parseCardholderName } from "../../../src/domain/cardholder-name.js";
import { testCard } from "./test-cards.js";

function nameOf(input: unknown): string | undefined {
  const parsed = parseCardholderName(input);
  if (!parsed.ok) throw new Error(`rejected: ${parsed.issues[0]?.code}`);
  return parsed.value;
}

function issue(input: unknown) {
  const parsed = parseCardholderName(input);
  return parsed.ok ? undefined : parsed.issues[0];
}

describe("parseCardholderName", () => {
  it("is optional", () => {
    expect(parseCardholderName(undefined)).toEqual({ ok: true, value: undefined });
  });

  it("trims and accepts letters of any script", () => {
    expect(nameOf("  Jane Doe  ")).toBe("Jane Doe");
    expect(nameOf("Zoë O'Brien-Łukasiewicz")).toBe("Zoë O'Brien-Łukasiewicz");
    expect(nameOf("山田 太郎")).toBe("山田 太郎");
    expect(nameOf("محمد\u200Cعلی")).toBe("محمد\u200Cعلی");
  });

  it("normalises to NFC", () => {
    expect(nameOf("Jose\u0301")).toBe("Jos\u00e9");
  });

  it("accepts 1 to 100 characters after trimming, counting code points", () => {
    expect(nameOf("J")).toBe("J");
    expect(nameOf("a".repeat(100))).toHaveLength(100);
    expect(nameOf(`  ${"a".repeat(100)}  `)).toHaveLength(100);
    expect(nameOf("𝒜".repeat(100))).toHaveLength(200);
    expect(issue("a".repeat(101))?.code).toBe("NAME_INVALID");
    expect(issue("𝒜".repeat(101))?.code).toBe("NAME_INVALID");
    expect(issue("")?.code).toBe("NAME_INVALID");
    expect(issue(" \t ")?.code).toBe("NAME_INVALID");
  });

  it.each([
    "Jane\u0000Doe",
    "Jane\nDoe",
    "Jane\tDoe",
    "Jane\u007fDoe",
    "Jane\u202eeoD",
    "Jane\u2066x",
    "Jane\u2028Doe",
    "Jane\ud800",
  ])("rejects control and bidi characters in %j", (input) => {
    expect(issue(input)).toEqual({
      field: "card.name",
      code: "NAME_INVALID",
      message: expect.any(String),
    });
  });

  it("rejects anything but a string", () => {
    for (const input of [null, 42, {}, ["Jane"]]) expect(issue(input)?.code).toBe("NAME_INVALID");
  });

  it("rejects a name that holds a card number, without repeating it", () => {
    const visa = testCard("visa");
    const found = issue(`Jane ${visa}`);
    expect(found?.code).toBe("NAME_INVALID");
    expect(found?.message).not.toContain(visa);
    expect(nameOf("Jane Doe 3")).toBe("Jane Doe 3");
  });

  it("uses the given field path", () => {
    const parsed = parseCardholderName(7, "cards/1/card.name");
    expect(parsed.ok ? undefined : parsed.issues[0]?.field).toBe("cards/1/card.name");
  });
});
