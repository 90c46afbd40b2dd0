/**
 * Stripe-style form bodies (`application/x-www-form-urlencoded`, WHATWG URL §5): `amount=1000`
 * and one level of brackets, `card[number]=…`, read into the same nested shape a JSON body has.
 * Anything else (deeper nesting, `card[]`, a key sent twice, a field that is both a value and an
 * object) is refused rather than guessed at.
 */
export type FormValue = string | Record<string, string>;

export type FormParse =
  | { readonly ok: true; readonly value: Record<string, FormValue> }
  | { readonly ok: false; readonly message: string };

/** Letters and `_` only: a name that passed can be quoted in an error, as it holds no digits. */
const KEY = /^([A-Za-z_]{1,64})(?:\[([A-Za-z_]{1,64})\])?$/;

function refused(message: string): FormParse {
  return { ok: false, message };
}

/** Parses the body text; the message never repeats a value (it may be a card number). */
export function parseFormBody(text: string): FormParse {
  const value: Record<string, FormValue> = Object.create(null);
  for (const [key, item] of new URLSearchParams(text)) {
    const match = KEY.exec(key);
    // The bad name is not repeated: it is untrusted text and could hold a card number.
    if (match === null) return refused("A form field name is not of the form name or name[key].");
    const [, outer = "", inner] = match;
    const current = value[outer];
    if (inner === undefined) {
      if (current !== undefined) return refused(`The form field "${outer}" is sent twice.`);
      value[outer] = item;
      continue;
    }
    if (typeof current === "string") {
      return refused(`The form field "${outer}" is both a value and an object.`);
    }
    const nested = current ?? Object.create(null);
    if (nested[inner] !== undefined) {
      return refused(`The form field "${outer}[${inner}]" is sent twice.`);
    }
    nested[inner] = item;
    value[outer] = nested;
  }
  return { ok: true, value };
}
