/**
 * The frame's DOM: which input shows which field's error, and how errors, progress and success
 * are shown and announced (WCAG 2.2 3.3.1 Error Identification, 4.1.3 Status Messages). Every
 * error sits under its input, is tied to it with aria-describedby and marks it aria-invalid;
 * a summary goes to the form's role="alert" region so screen readers announce it.
 */

/** The form's inputs, by the name the frame uses; the expiry input holds exp_month and exp_year. */
const INPUT_IDS = {
  number: "card-number",
  expiry: "card-expiry",
  cvc: "card-cvc",
  name: "card-name",
};
export const INPUT_ORDER = ["number", "expiry", "cvc", "name"];

/** The input that shows a tokenize-contract field's errors. */
export function inputKeyOf(field) {
  return field === "exp_month" || field === "exp_year" ? "expiry" : field;
}

function byId(doc, id) {
  const element = doc.getElementById(id);
  if (element === null) throw new Error(`the capture form has no #${id}`);
  return element;
}

export function createFormView(doc) {
  const form = byId(doc, "payvault-capture");
  const submit = byId(doc, "card-submit");
  const alertRegion = byId(doc, "form-alert");
  const summaryRegion = byId(doc, "field-summary");
  const statusRegion = byId(doc, "form-status");
  const success = byId(doc, "capture-success");
  const inputs = {};
  const errors = {};
  const baseDescriptions = {};
  for (const key of INPUT_ORDER) {
    const input = byId(doc, INPUT_IDS[key]);
    inputs[key] = input;
    errors[key] = byId(doc, `${INPUT_IDS[key]}-error`);
    baseDescriptions[key] = input.getAttribute("aria-describedby") ?? "";
  }

  function setError(key, message) {
    const input = inputs[key];
    errors[key].textContent = message;
    errors[key].hidden = false;
    input.setAttribute("aria-invalid", "true");
    input.setAttribute("aria-describedby", `${errors[key].id} ${baseDescriptions[key]}`.trim());
  }

  function clearError(key) {
    const input = inputs[key];
    errors[key].textContent = "";
    errors[key].hidden = true;
    input.removeAttribute("aria-invalid");
    if (baseDescriptions[key] === "") input.removeAttribute("aria-describedby");
    else input.setAttribute("aria-describedby", baseDescriptions[key]);
  }

  function hasError(key) {
    return !errors[key].hidden;
  }

  /** Emptied first so the same message twice in a row is announced twice. */
  function say(region, message) {
    region.textContent = "";
    region.textContent = message;
  }

  /** A failure that is not about one field: shown under the button and announced. */
  function announce(message) {
    say(summaryRegion, "");
    say(alertRegion, message);
  }

  /**
   * Shows `messages` (input key → sentence; the first one per input wins) under their inputs,
   * clears the other inputs' errors, announces a summary (for screen readers only: the errors
   * are already on screen) and moves focus to the first input to fix.
   */
  function showErrors(messages) {
    for (const key of INPUT_ORDER) {
      if (messages.has(key)) setError(key, messages.get(key));
      else clearError(key);
    }
    const first = INPUT_ORDER.find((key) => messages.has(key));
    const count = messages.size;
    const summary = count === 1 ? "Check 1 field." : `Check ${count} fields.`;
    say(alertRegion, "");
    say(summaryRegion, `${summary} ${[...messages.values()].join(" ")}`);
    if (first !== undefined) inputs[first].focus();
  }

  function setBusy(busy) {
    form.setAttribute("aria-busy", String(busy));
    submit.disabled = busy;
    statusRegion.textContent = busy ? "Saving the card…" : "";
  }

  /** Removes every value the person typed: the card must not stay in the page once saved. */
  function clearInputs() {
    for (const key of INPUT_ORDER) {
      inputs[key].value = "";
      clearError(key);
    }
  }

  function showSuccess(text) {
    announce("");
    form.hidden = true;
    byId(doc, "success-detail").textContent = text;
    success.hidden = false;
    success.focus();
  }

  return {
    form,
    submit,
    inputs,
    setError,
    clearError,
    hasError,
    announce,
    showErrors,
    setBusy,
    clearInputs,
    showSuccess,
  };
}
