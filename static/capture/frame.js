/**
 * The capture frame: wires the form to the card rules, the live formatting and the capture
 * client, and talks to the parent page with postMessage. Configuration comes from data-
 * attributes the vault wrote on the form (never from inline script: the CSP allows none).
 *
 * Messages to the parent, each sent to every allowed origin (the browser delivers only to the
 * one that matches the parent; never "*"):
 *   { type: "payvault:ready" }
 *   { type: "payvault:token", token, card: { brand, last4, exp_month, exp_year } }
 *   { type: "payvault:error", code, errors: [{ field, code }] }   (codes only, never values)
 *   { type: "payvault:resize", height }
 */
import { createCaptureClient } from "./capture-client.js";
import { digitsOf, editCvc, editExpiry, editNumber } from "./card-format.js";
import {
  brandTableFrom,
  checkCvc,
  checkExpiry,
  checkName,
  checkNumber,
  detectBrand,
  rulesFor,
  validateCard,
} from "./card-rules.js";
import { createFormView, INPUT_ORDER, inputKeyOf } from "./form-view.js";
import { brandName, contractFieldOf, formMessageFor, messageFor } from "./messages.js";

const JOSE_BASE = /^\/capture\/assets\/jose\/[0-9A-Za-z.+-]+$/;

function readConfig(form) {
  const { session, vaultOrigin, parentOrigins, jose } = form.dataset;
  if (!session || !vaultOrigin || !parentOrigins || !jose || !JOSE_BASE.test(jose)) {
    throw new Error("the capture form is missing its configuration");
  }
  return { session, vaultOrigin, parentOrigins: parentOrigins.split(" "), jose };
}

async function loadJose(base) {
  const [encrypt, key, jwt] = await Promise.all([
    import(`${base}/jwe/compact/encrypt.js`),
    import(`${base}/key/import.js`),
    import(`${base}/util/decode_jwt.js`),
  ]);
  return {
    CompactEncrypt: encrypt.CompactEncrypt,
    importJWK: key.importJWK,
    decodeJwt: jwt.decodeJwt,
  };
}

async function loadBrandTable() {
  const response = await fetch(new URL("brands.json", import.meta.url), { credentials: "omit" });
  if (!response.ok) throw new Error("brands.json could not be loaded");
  return brandTableFrom(await response.json());
}

function parentPoster(origins) {
  return (message) => {
    if (window.parent === window) return;
    for (const origin of origins) window.parent.postMessage(message, origin);
  };
}

/** The form's values as typed; the number without the spaces the form adds. */
function formValues(view) {
  const { number, expiry, cvc, name } = view.inputs;
  return { number: digitsOf(number.value), expiry: expiry.value, cvc: cvc.value, name: name.value };
}

/** Issues → input key → sentence (the first issue of each input is shown). */
function messagesOf(issues, table) {
  const messages = new Map();
  for (const found of issues) {
    const key = inputKeyOf(found.field);
    if (!messages.has(key)) {
      messages.set(key, messageFor(found, rulesFor(table, found.brand ?? "unknown")));
    }
  }
  return messages;
}

/** Live formatting, brand badge and CVC hint. */
function wireFormatting(view, table) {
  const { number, expiry, cvc } = view.inputs;
  const badge = document.getElementById("card-brand");
  const cvcHint = document.getElementById("card-cvc-hint");
  const maxLengthOf = (brand) => Math.max(...rulesFor(table, brand).lengths);
  const brandOf = (digits) => detectBrand(table, digits);
  // Digits before each edit, taken at beforeinput and dropped at input: nothing is kept between.
  const before = new WeakMap();
  for (const input of [number, expiry, cvc]) {
    input.addEventListener("beforeinput", () => before.set(input, digitsOf(input.value)));
  }
  const editOf = (input, event) => {
    const edit = {
      value: input.value,
      caret: input.selectionStart ?? input.value.length,
      inputType: event.inputType,
      previousDigits: before.get(input),
    };
    before.delete(input);
    return edit;
  };
  const apply = (input, result) => {
    if (input.value !== result.value) input.value = result.value;
    if (document.activeElement === input) input.setSelectionRange(result.caret, result.caret);
  };
  const showBrand = (brand) => {
    const name = brandName(brand) ?? "";
    if (badge.textContent !== name) badge.textContent = name;
    const amex = rulesFor(table, brand).cvcLength === 4 && brand !== "unknown";
    cvcHint.textContent = amex ? "4 digits, on the front of the card" : "3 digits, on the back";
  };
  number.addEventListener("input", (event) => {
    const result = editNumber(editOf(number, event), brandOf, maxLengthOf);
    apply(number, result);
    showBrand(result.brand);
  });
  expiry.addEventListener("input", (event) => apply(expiry, editExpiry(editOf(expiry, event))));
  cvc.addEventListener("input", (event) => {
    const brand = brandOf(digitsOf(number.value));
    apply(cvc, editCvc(editOf(cvc, event), Math.max(...rulesFor(table, brand).cvcLengths)));
  });
  return showBrand;
}

/** One field's check, for blur and for clearing an error as soon as it is fixed. */
function checkOne(key, view, table, now) {
  const values = formValues(view);
  const brand = detectBrand(table, values.number);
  if (key === "number") return checkNumber(table, values.number);
  if (key === "expiry") return checkExpiry(values.expiry, now)[0];
  if (key === "cvc") return checkCvc(table, brand, values.cvc);
  return checkName(values.name);
}

function wireFieldChecks(view, table, now) {
  for (const key of INPUT_ORDER) {
    const input = view.inputs[key];
    const recheck = (showNew) => {
      const found = checkOne(key, view, table, now());
      if (found === undefined) view.clearError(key);
      else if (showNew || view.hasError(key)) {
        view.setError(key, messageFor(found, rulesFor(table, found.brand ?? "unknown")));
      }
    };
    // On leaving a field that has content, say what is wrong; while typing, only clear.
    input.addEventListener("blur", () => {
      if (input.value !== "") recheck(true);
    });
    input.addEventListener("input", () => {
      if (view.hasError(key)) recheck(false);
    });
  }
}

function wireSubmit({ view, table, client, post, now }) {
  const fail = (messages, issues) => {
    view.showErrors(messages);
    const errors = issues.map(({ field, code }) => ({ field, code }));
    post({ type: "payvault:error", code: "VALIDATION_FAILED", errors });
  };
  view.form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (view.submit.disabled) return;
    const checked = validateCard(table, formValues(view), now());
    if (!checked.ok) return fail(messagesOf(checked.issues, table), checked.issues);
    view.setBusy(true);
    let result;
    try {
      result = await client.tokenize(checked.card);
    } catch {
      result = { ok: false, status: 0, code: "CAPTURE_FAILED", errors: [] };
    } finally {
      view.setBusy(false);
    }
    if (result.ok) {
      view.clearInputs();
      post({ type: "payvault:token", token: result.token, card: result.card });
      const name = brandName(result.card.brand) ?? "The card";
      const last4 = String(result.card.last4);
      const ending = /^[0-9]{4}$/.test(last4) ? ` ending in ${last4}` : "";
      view.showSuccess(`${name}${ending} is saved.`);
      return;
    }
    const brand = detectBrand(table, formValues(view).number);
    const issues = result.errors
      .map((error) => ({ field: contractFieldOf(error.field), code: error.code, brand }))
      .filter((error) => error.field !== undefined && typeof error.code === "string");
    if (issues.length > 0) return fail(messagesOf(issues, table), issues);
    view.announce(formMessageFor(result.code, result.status));
    post({ type: "payvault:error", code: result.code ?? `HTTP_${result.status}`, errors: [] });
  });
}

async function start() {
  const view = createFormView(document);
  const config = readConfig(view.form);
  const post = parentPoster(config.parentOrigins);
  try {
    const [table, jose] = await Promise.all([loadBrandTable(), loadJose(config.jose)]);
    const now = () => new Date();
    const client = createCaptureClient({
      session: config.session,
      audience: config.vaultOrigin,
      baseUrl: window.location.origin,
      jose,
      fetch: (...args) => window.fetch(...args),
      now: () => Date.now(),
      randomUUID: () => crypto.randomUUID(),
    });
    wireFormatting(view, table)("unknown");
    wireFieldChecks(view, table, now);
    wireSubmit({ view, table, client, post, now });
    // Fetch the capture key now, so the first submit does not wait for it.
    client.captureKey().catch(() => undefined);
    view.submit.disabled = false;
    post({ type: "payvault:ready" });
  } catch {
    view.announce(formMessageFor("FRAME_LOAD_FAILED", 0));
    post({ type: "payvault:error", code: "FRAME_LOAD_FAILED", errors: [] });
  }
  // The body's own height (the root's scrollHeight never drops below the iframe's height).
  new ResizeObserver(() => {
    post({
      type: "payvault:resize",
      height: Math.ceil(document.body.getBoundingClientRect().height),
    });
  }).observe(document.body);
}

start();
