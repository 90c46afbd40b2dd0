/**
 * The symbol Node's `util.inspect` (and so `console.log`) calls for a custom rendering.
 * Taken from the global registry so `domain/` needs no `node:util` import.
 */
export const INSPECT_CUSTOM: unique symbol = Symbol.for("nodejs.util.inspect.custom");
