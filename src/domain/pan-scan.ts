import { luhnValid } from "./luhn.js";

/**
 * Finds card numbers in free text, for the last-line log scrubber: PCI DSS v4.0.1 3.5.1
 * requires PAN to be unreadable anywhere it is stored, and log files are storage.
 *
 * Two shapes are recognised, in one linear pass over the text:
 * - a plain run: a maximal run of 13 to 19 ASCII digits (bounded by non-digits) that passes
 *   Luhn. A run of 20 or more digits is some other identifier and is left alone.
 * - a grouped number: digit groups joined by single spaces or dashes, laid out as
 *   4-4-4-(1..4), 4-4-4-4-(1..3) or 4-6-(4..5) (Amex, Diners), whose digits pass Luhn. Every
 *   such window inside a longer chain of groups is checked and overlapping windows are
 *   merged, so a card followed or preceded by another group of digits is still found.
 * Other separators (dots, tabs, double spaces) are not recognised.
 */
export interface TextSpan {
  start: number;
  end: number;
}

const MIN_PLAIN_RUN = 13;
const MAX_PLAIN_RUN = 19;
/** Groups of exactly `lead` sizes, then a last group of `lastMin` to `lastMax` digits. */
interface GroupedLayout {
  readonly lead: readonly number[];
  readonly lastMin: number;
  readonly lastMax: number;
}
const GROUPED_LAYOUTS: readonly GroupedLayout[] = [
  { lead: [4, 4, 4, 4], lastMin: 1, lastMax: 3 }, // 17-19 digits
  { lead: [4, 4, 4], lastMin: 1, lastMax: 4 }, // 13-16 digits
  { lead: [4, 6], lastMin: 4, lastMax: 5 }, // Amex 4-6-5, Diners 4-6-4
];
/** Digits kept visible at each end of a scrubbed number: PCI DSS 3.4.1 (BIN and last 4). */
const KEEP_FIRST = 6;
const KEEP_LAST = 4;

function isDigitCode(code: number): boolean {
  return code >= 48 && code <= 57;
}

/** Every maximal run of ASCII digits, in order. */
function digitGroups(text: string): TextSpan[] {
  const groups: TextSpan[] = [];
  let start = -1;
  for (let i = 0; i <= text.length; i++) {
    const digit = i < text.length && isDigitCode(text.charCodeAt(i));
    if (digit && start < 0) start = i;
    if (!digit && start >= 0) {
      groups.push({ start, end: i });
      start = -1;
    }
  }
  return groups;
}

function isSeparator(char: string): boolean {
  return char === " " || char === "-";
}

/** Up to 5 groups from `first` on, each joined to the previous by one space or dash. */
function chainFrom(text: string, groups: readonly TextSpan[], first: number): TextSpan[] {
  const chain: TextSpan[] = [];
  for (let k = first; k < groups.length && chain.length < 5; k++) {
    const group = groups[k]!;
    const previous = chain[chain.length - 1];
    const joined =
      previous === undefined ||
      (group.start === previous.end + 1 && isSeparator(text.charAt(previous.end)));
    if (!joined) break;
    chain.push(group);
  }
  return chain;
}

function fitsLayout(chain: readonly TextSpan[], layout: GroupedLayout): boolean {
  const sizes = chain.map((group) => group.end - group.start);
  const last = sizes[layout.lead.length];
  if (last === undefined || last < layout.lastMin || last > layout.lastMax) return false;
  return layout.lead.every((size, i) => sizes[i] === size);
}

/** Grouped windows that start at group `first` and pass Luhn. */
function groupedMatchesAt(text: string, groups: readonly TextSpan[], first: number): TextSpan[] {
  const chain = chainFrom(text, groups, first);
  const matches: TextSpan[] = [];
  for (const layout of GROUPED_LAYOUTS) {
    if (!fitsLayout(chain, layout)) continue;
    const window = chain.slice(0, layout.lead.length + 1);
    const digits = window.map((g) => text.slice(g.start, g.end)).join("");
    if (luhnValid(digits)) matches.push({ start: window[0]!.start, end: window.at(-1)!.end });
  }
  return matches;
}

/** Appends `span`, merging it into the last span when they overlap. */
function pushMerged(spans: TextSpan[], span: TextSpan): void {
  const last = spans[spans.length - 1];
  if (last !== undefined && span.start < last.end) {
    last.end = Math.max(last.end, span.end);
  } else {
    spans.push({ ...span });
  }
}

/** Spans of `text` that hold something that looks like a PAN (see the module comment). */
export function findPanLikeRuns(text: string): TextSpan[] {
  const groups = digitGroups(text);
  const spans: TextSpan[] = [];
  groups.forEach((group, i) => {
    const size = group.end - group.start;
    if (size >= MIN_PLAIN_RUN && size <= MAX_PLAIN_RUN) {
      if (luhnValid(text.slice(group.start, group.end))) pushMerged(spans, group);
      return;
    }
    for (const match of groupedMatchesAt(text, groups, i)) pushMerged(spans, match);
  });
  return spans;
}

/**
 * Keeps the first 6 and last 4 digits, stars the rest and keeps separators, so the text keeps
 * its length and offsets. Logs always keep 6 (never the 8-digit BIN of `maskPan`): the
 * scrubber does not know the brand or real length, so it uses the stricter form.
 */
function maskRun(run: string): string {
  let total = 0;
  for (let i = 0; i < run.length; i++) if (isDigitCode(run.charCodeAt(i))) total++;
  let seen = 0;
  let out = "";
  for (const char of run) {
    if (!isDigitCode(char.charCodeAt(0))) {
      out += char;
      continue;
    }
    out += seen < KEEP_FIRST || seen >= total - KEEP_LAST ? char : "*";
    seen++;
  }
  return out;
}

/** `text` with every PAN-like run masked in place (same length, same offsets). */
export function scrubPans(text: string): string {
  const spans = findPanLikeRuns(text);
  if (spans.length === 0) return text;
  let out = "";
  let cursor = 0;
  for (const span of spans) {
    out += text.slice(cursor, span.start) + maskRun(text.slice(span.start, span.end));
    cursor = span.end;
  }
  return out + text.slice(cursor);
}
