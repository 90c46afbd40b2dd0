import { copyFile, mkdir } from "node:fs/promises";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import type { Browser, BrowserContext, FrameLocator, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ServedVault } from "../support/browser.js";
import { chromiumMissing, launchChromium, serveVault } from "../support/browser.js";
import { DRIVERS } from "../support/databases.js";
import { panSpellings } from "../support/session-fixtures.js";
import type { TestVault } from "../support/vault-harness.js";
import { startTestVault } from "../support/vault-harness.js";
import { testCards } from "../unit/capture-frame/brand-table.js";
import type { DemoMerchant } from "./demo-merchant.js";
import { startDemoMerchant } from "./demo-merchant.js";

/**
 * The capture frame in real Chromium (issue 4 point 7): a merchant page on another site embeds
 * the vault's frame; a person types the published test cards; tokens arrive in the parent page;
 * bad input gets specific errors; the keyboard alone is enough; a session for another origin
 * cannot be framed; and no number typed reaches the vault's logs or the parent page.
 */
const SCREENSHOTS = fileURLToPath(new URL("../../test-output/screenshots/", import.meta.url));
const README_IMAGE = fileURLToPath(new URL("../../docs/img/capture-frame.png", import.meta.url));
const EXP_YY = String((new Date().getUTCFullYear() + 3) % 100).padStart(2, "0");
const NAME = "Ada Lovelace";

interface Message {
  type: string;
  token?: string;
  card?: { brand: string; last4: string; exp_month: number; exp_year: number };
  code?: string;
  errors?: { field: string; code: string }[];
}

interface Checkout {
  readonly page: Page;
  readonly frame: FrameLocator;
  messages(): Promise<Message[]>;
  tokenizeCalls(): number;
}

const missing = chromiumMissing();

describe.skipIf(missing !== undefined)("capture frame in Chromium", () => {
  let vault: TestVault;
  let served: ServedVault;
  let merchant: DemoMerchant;
  let browser: Browser;
  let context: BrowserContext;
  /** Every number typed into the frame and every session it was given: none may be logged. */
  const typedNumbers = new Set<string>();
  const sessions = new Set<string>();
  const allMessages: Message[] = [];

  beforeAll(async () => {
    vault = await startTestVault(DRIVERS[0] as (typeof DRIVERS)[number]);
    served = await serveVault(vault);
    const apiKey = await vault.newKey(vault.tenantId, ["capture"], "test");
    merchant = await startDemoMerchant({ vaultOrigin: served.origin, apiKey, tls: served.tls });
    browser = await launchChromium();
    context = await browser.newContext({
      ignoreHTTPSErrors: true,
      viewport: { width: 600, height: 640 },
    });
    await mkdir(SCREENSHOTS, { recursive: true });
  });
  afterAll(async () => {
    await browser?.close();
    await merchant?.close();
    await served?.close();
    await vault?.close();
  });

  /** Opens the merchant's checkout and waits for the frame's payvault:ready. */
  async function openCheckout(sessionFor?: readonly string[]): Promise<Checkout> {
    const page = await context.newPage();
    let tokenizeCalls = 0;
    page.on("request", (request) => {
      const url = new URL(request.url());
      if (url.pathname === "/capture/frame") sessions.add(url.searchParams.get("session") ?? "");
      if (url.pathname === "/v1/capture/tokenize") tokenizeCalls++;
    });
    await page.goto(merchant.checkoutUrl(sessionFor === undefined ? {} : { sessionFor }));
    const messages = async () => {
      const received = (await page.evaluate("window.received")) as Message[];
      return received.filter((m) => m.type !== "payvault:resize");
    };
    await page.waitForFunction("window.received.some((m) => m.type === 'payvault:ready')");
    return {
      page,
      frame: page.frameLocator("#payvault"),
      messages,
      tokenizeCalls: () => tokenizeCalls,
    };
  }

  async function closeCheckout(checkout: Checkout): Promise<void> {
    allMessages.push(...(await checkout.messages()));
    await checkout.page.close();
  }

  async function typeCard(
    frame: FrameLocator,
    card: { number: string; expiry: string; cvc: string; name: string },
  ): Promise<void> {
    typedNumbers.add(card.number.replace(/\D/g, ""));
    await frame.locator("#card-number").pressSequentially(card.number);
    await frame.locator("#card-expiry").pressSequentially(card.expiry);
    await frame.locator("#card-cvc").pressSequentially(card.cvc);
    await frame.locator("#card-name").pressSequentially(card.name);
  }

  async function tokenOf(checkout: Checkout): Promise<Message> {
    await checkout.page.waitForFunction(
      "window.received.some((m) => m.type === 'payvault:token' || m.type === 'payvault:error')",
    );
    const found = (await checkout.messages()).find(
      (m) => m.type === "payvault:token" || m.type === "payvault:error",
    );
    expect(found, JSON.stringify(found)).toMatchObject({ type: "payvault:token" });
    return found as Message;
  }

  const errorOf = (frame: FrameLocator, id: string) => frame.locator(`#${id}-error`);

  it("renders inside the merchant's page under the frame's own CSP, and says it is ready", async () => {
    const page = await context.newPage();
    const frameResponse = page.waitForResponse((r) => r.url().includes("/capture/frame?"));
    await page.goto(merchant.checkoutUrl());
    const headers = (await frameResponse).headers();
    expect(headers["content-security-policy"]).toMatch(
      new RegExp(`; frame-ancestors ${merchant.origin.replaceAll(".", "\\.")}$`),
    );
    expect(headers["content-security-policy"]).toContain("script-src 'self'");
    expect(headers["x-frame-options"]).toBeUndefined();
    expect(headers["cache-control"]).toBe("no-store");
    await page.waitForFunction("window.received.some((m) => m.type === 'payvault:ready')");
    const frame = page.frameLocator("#payvault");
    for (const [id, label, autocomplete] of [
      ["card-number", "Card number", "cc-number"],
      ["card-expiry", "Expiry date", "cc-exp"],
      ["card-cvc", "Security code", "cc-csc"],
      ["card-name", "Name on card", "cc-name"],
    ] as const) {
      await expect(frame.getByLabel(label, { exact: true }).getAttribute("id")).resolves.toBe(id);
      await expect(frame.locator(`#${id}`).getAttribute("autocomplete")).resolves.toBe(
        autocomplete,
      );
    }
    await expect(frame.locator("#card-number").getAttribute("inputmode")).resolves.toBe("numeric");
    await expect(frame.locator("#card-submit").isEnabled()).resolves.toBe(true);
    await page.locator("#payvault").screenshot({ path: `${SCREENSHOTS}capture-empty.png` });
    await page.close();
  });

  it("groups the number as printed and names the brand while it is typed", async () => {
    const checkout = await openCheckout();
    const { frame } = checkout;
    const amex = testCards.valid.find((c) => c.brand === "amex")?.number as string;
    typedNumbers.add(amex);
    await frame.locator("#card-number").pressSequentially(amex);
    await expect(frame.locator("#card-number").inputValue()).resolves.toBe("3782 822463 10005");
    await expect(frame.locator("#card-brand").textContent()).resolves.toBe("American Express");
    await expect(frame.locator("#card-cvc-hint").textContent()).resolves.toMatch(/^4 digits/);
    // Backspace over the separator the form added removes the digit before it.
    await frame.locator("#card-number").press("End");
    for (let i = 0; i < 6; i++) await frame.locator("#card-number").press("Backspace");
    await expect(frame.locator("#card-number").inputValue()).resolves.toBe("3782 82246");
    await frame.locator("#card-expiry").pressSequentially("4");
    await expect(frame.locator("#card-expiry").inputValue()).resolves.toBe("04");
    await frame.locator("#card-expiry").pressSequentially(EXP_YY);
    await expect(frame.locator("#card-expiry").inputValue()).resolves.toBe(`04 / ${EXP_YY}`);
    await closeCheckout(checkout);
  });

  // One test per published test card: each types it, submits, and waits for the token.
  for (const [index, card] of testCards.valid.entries()) {
    it(`tokenizes test card ${index + 1} (${card.brand}) and the token reaches the parent page`, async () => {
      const checkout = await openCheckout();
      const { frame, page } = checkout;
      await typeCard(frame, {
        number: card.number,
        expiry: `12${EXP_YY}`,
        cvc: card.brand === "amex" ? "1234" : "123",
        name: NAME,
      });
      await frame.getByRole("button", { name: "Save card" }).click();
      const message = await tokenOf(checkout);
      expect(message.token).toMatch(/^tok_[A-Za-z0-9]+$/);
      expect(message.card).toEqual({
        brand: card.brand,
        last4: card.number.slice(-4),
        exp_month: 12,
        exp_year: 2000 + Number(EXP_YY),
      });
      // Saved: the form is gone and cleared; the number is nowhere in the frame's document.
      await expect(frame.locator("#capture-success").isVisible()).resolves.toBe(true);
      await expect(frame.locator("#success-detail").textContent()).resolves.toContain(
        `ending in ${card.number.slice(-4)}`,
      );
      for (const id of ["card-number", "card-expiry", "card-cvc", "card-name"]) {
        await expect(frame.locator(`#${id}`).inputValue()).resolves.toBe("");
      }
      const html = await frame.locator("html").evaluate((root) => root.outerHTML);
      for (const spelling of panSpellings(card.number)) expect(html).not.toContain(spelling);
      if (index === 0) {
        const shot = `${SCREENSHOTS}capture-success.png`;
        await page.locator("#payvault").screenshot({ path: shot });
        await mkdir(dirname(README_IMAGE), { recursive: true });
        await copyFile(shot, README_IMAGE);
      }
      await closeCheckout(checkout);
    });
  }

  it("shows what is wrong next to each field, announces it, and sends nothing", async () => {
    const checkout = await openCheckout();
    const { frame, page } = checkout;
    const badLuhn = testCards.invalid_luhn[0] as string;
    await typeCard(frame, { number: badLuhn, expiry: "0120", cvc: "12", name: "" });
    await frame.getByRole("button", { name: "Save card" }).click();
    const expected = {
      "card-number": "The card number is not valid. Check it for typos.",
      "card-expiry": "The expiry date is in the past: this card has expired.",
      "card-cvc": "The security code must have 3 digits for Visa.",
      "card-name": "Enter the name as it appears on the card.",
    };
    for (const [id, text] of Object.entries(expected)) {
      await expect(errorOf(frame, id).textContent()).resolves.toBe(text);
      await expect(errorOf(frame, id).isVisible()).resolves.toBe(true);
      const input = frame.locator(`#${id}`);
      await expect(input.getAttribute("aria-invalid")).resolves.toBe("true");
      await expect(input.getAttribute("aria-describedby")).resolves.toContain(`${id}-error`);
    }
    await expect(frame.locator("#field-summary").textContent()).resolves.toMatch(
      /^Check 4 fields\. The card number is not valid/,
    );
    await expect(frame.locator("#field-summary").getAttribute("role")).resolves.toBe("alert");
    await expect(frame.locator(":focus").getAttribute("id")).resolves.toBe("card-number");
    await page.locator("#payvault").screenshot({ path: `${SCREENSHOTS}capture-error.png` });

    const [error] = (await checkout.messages()).filter((m) => m.type === "payvault:error");
    expect(error).toEqual({
      type: "payvault:error",
      code: "VALIDATION_FAILED",
      errors: [
        { field: "number", code: "PAN_LUHN" },
        { field: "exp_year", code: "CARD_EXPIRED" },
        { field: "cvc", code: "CVC_INVALID" },
        { field: "name", code: "FIELD_REQUIRED" },
      ],
    });
    expect(checkout.tokenizeCalls()).toBe(0);

    // Fixing a field clears its error at once.
    await frame.locator("#card-cvc").pressSequentially("3");
    await expect(errorOf(frame, "card-cvc").isHidden()).resolves.toBe(true);
    await expect(frame.locator("#card-cvc").getAttribute("aria-invalid")).resolves.toBeNull();
    await closeCheckout(checkout);
  });

  it("says which rule a short number, a bad month or an Amex CVC breaks", async () => {
    const visa = testCards.valid.find((c) => c.brand === "visa")?.number as string;
    const amex = testCards.valid.find((c) => c.brand === "amex")?.number as string;
    const cases = [
      {
        card: { number: visa.slice(0, 12), expiry: `13${EXP_YY}`, cvc: "123", name: NAME },
        errors: {
          "card-number":
            "The card number is the wrong length: Visa card numbers have 13, 16 or 19 digits.",
          "card-expiry": "The expiry month must be from 01 to 12 (MM / YY).",
        },
      },
      {
        card: { number: amex, expiry: `12${EXP_YY}`, cvc: "123", name: NAME },
        errors: { "card-cvc": "The security code must have 4 digits for American Express." },
      },
      {
        card: { number: visa.slice(0, 8), expiry: "12", cvc: "123", name: NAME },
        errors: {
          "card-number": "The card number must have 12 to 19 digits.",
          "card-expiry": "The expiry year must have two digits (MM / YY).",
        },
      },
    ];
    for (const { card, errors } of cases) {
      const checkout = await openCheckout();
      await typeCard(checkout.frame, card);
      await checkout.frame.locator("#card-name").press("Enter");
      for (const id of ["card-number", "card-expiry", "card-cvc", "card-name"]) {
        const text = (errors as Record<string, string>)[id];
        if (text === undefined) {
          await expect(errorOf(checkout.frame, id).isHidden(), id).resolves.toBe(true);
        } else {
          await expect(errorOf(checkout.frame, id).textContent()).resolves.toBe(text);
        }
      }
      expect(checkout.tokenizeCalls()).toBe(0);
      await closeCheckout(checkout);
    }
  });

  it("shows the vault's own field errors and failures on the right field or under the form", async () => {
    const visa = testCards.valid.find((c) => c.brand === "visa")?.number as string;
    const answers = [
      {
        status: 400,
        body: {
          code: "VALIDATION_FAILED",
          errors: [
            { field: "card.exp_year", code: "CARD_EXPIRED", message: "The card has expired." },
          ],
        },
        field: "card-expiry",
        text: "The expiry date is in the past: this card has expired.",
      },
      {
        status: 401,
        body: { code: "CAPTURE_SESSION_INVALID" },
        field: "form-alert",
        text: "This card form has expired. Reload the page and enter the card again.",
      },
    ];
    for (const answer of answers) {
      const checkout = await openCheckout();
      // The vault's answer is replaced here (the frame's handling of it is under test).
      await checkout.page.route("**/v1/capture/tokenize", (route) =>
        route.fulfill({
          status: answer.status,
          contentType: "application/problem+json",
          body: JSON.stringify(answer.body),
        }),
      );
      await typeCard(checkout.frame, {
        number: visa,
        expiry: `12${EXP_YY}`,
        cvc: "123",
        name: NAME,
      });
      await checkout.frame.getByRole("button", { name: "Save card" }).click();
      const target =
        answer.field === "form-alert"
          ? checkout.frame.locator("#form-alert")
          : errorOf(checkout.frame, answer.field);
      await expect.poll(() => target.textContent()).toBe(answer.text);
      // The card stays in the form to be corrected; the parent hears the codes only.
      await expect(checkout.frame.locator("#card-number").inputValue()).resolves.not.toBe("");
      const errors = (await checkout.messages()).filter((m) => m.type === "payvault:error");
      expect(JSON.stringify(errors)).not.toMatch(/\d{6}/);
      await closeCheckout(checkout);
    }
  });

  it("works with the keyboard alone: Tab goes number, expiry, CVC, name, button; Enter submits", async () => {
    const checkout = await openCheckout();
    const { page, frame } = checkout;
    const focused = () => frame.locator(":focus").getAttribute("id");
    const card = testCards.valid.find((c) => c.brand === "mastercard")?.number as string;
    typedNumbers.add(card);
    await page.keyboard.press("Tab");
    await expect(focused()).resolves.toBe("card-number");
    await page.keyboard.type(card);
    await page.keyboard.press("Tab");
    await expect(focused()).resolves.toBe("card-expiry");
    await page.keyboard.type(`12${EXP_YY}`);
    await page.keyboard.press("Tab");
    await expect(focused()).resolves.toBe("card-cvc");
    await page.keyboard.type("123");
    await page.keyboard.press("Tab");
    await expect(focused()).resolves.toBe("card-name");
    await page.keyboard.type(NAME);
    await page.keyboard.press("Tab");
    await expect(focused()).resolves.toBe("card-submit");
    await page.keyboard.press("Shift+Tab");
    await expect(focused()).resolves.toBe("card-name");
    await page.keyboard.press("Enter");
    const message = await tokenOf(checkout);
    expect(message.card?.last4).toBe(card.slice(-4));
    // Success moves focus to the confirmation, so a screen reader reads it.
    await expect(focused()).resolves.toBe("capture-success");
    await closeCheckout(checkout);
  });

  it("cannot be framed by a page the session was not made for (frame-ancestors)", async () => {
    const page = await context.newPage();
    // Chromium reports the refusal on the console (the frame's document is never created).
    const refused = page.waitForEvent("console", (m) =>
      m.text().includes("frame-ancestors https://other.example"),
    );
    await page.goto(merchant.checkoutUrl({ sessionFor: ["https://other.example"] }));
    await refused;
    const child = page.frames().find((f) => f !== page.mainFrame());
    expect(child?.url()).not.toContain("/capture/frame");
    await expect(page.frameLocator("#payvault").locator("#card-number").count()).resolves.toBe(0);
    expect(await page.evaluate("window.received")).toEqual([]);
    await page.close();
  });

  it("renders for a session that lists the page among several origins, and posts to it", async () => {
    const checkout = await openCheckout(["https://other.example", merchant.origin]);
    const card = testCards.valid.find((c) => c.brand === "discover")?.number as string;
    await typeCard(checkout.frame, { number: card, expiry: `12${EXP_YY}`, cvc: "123", name: NAME });
    await checkout.frame.getByRole("button", { name: "Save card" }).click();
    expect((await tokenOf(checkout)).card?.last4).toBe(card.slice(-4));
    await closeCheckout(checkout);
  });

  it("never lets a typed number or a session reach the vault's logs or the parent page", () => {
    expect(typedNumbers.size).toBeGreaterThan(testCards.valid.length);
    expect(sessions.size).toBeGreaterThan(0);
    const logged = vault.logs.text;
    expect(logged).toContain('"route":"/capture/frame"');
    for (const number of typedNumbers) {
      for (const spelling of panSpellings(number)) expect(logged).not.toContain(spelling);
    }
    // The log scrubber would have masked a Luhn-valid number: no masked number either.
    expect(logged).not.toMatch(/\d[ -]?\*|\*[ -]?\d/);
    for (const session of sessions) expect(logged).not.toContain(session.split(".")[2]);
    const toParent = JSON.stringify(allMessages);
    for (const number of typedNumbers) expect(toParent).not.toContain(number.slice(0, 6));
  });
});
