import type { FieldError } from "../../errors/registry.js";
import { checkRequestHeaders, defaultHeaderAllowlist } from "../../outbound/request-headers.js";
import {
  type CardField,
  hasPlaceholders,
  issue,
  parseTemplateText,
  renderJsonString,
  renderText,
  type TemplateText,
  type ValuesOf,
} from "./placeholders.js";

export const FORWARD_METHODS = ["POST", "GET", "PUT", "PATCH", "DELETE"] as const;
export type ForwardMethod = (typeof FORWARD_METHODS)[number];

export const JSON_CONTENT_TYPE = "application/json";
export const FORM_CONTENT_TYPE = "application/x-www-form-urlencoded";
export type ForwardContentType = typeof JSON_CONTENT_TYPE | typeof FORM_CONTENT_TYPE;

/** What the caller sends to POST /v1/forward, before the destination and the tokens. */
export interface ForwardTemplateInput {
  readonly url: string;
  readonly method: ForwardMethod;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: unknown;
  readonly content_type?: ForwardContentType;
}

/** Bounds of a template (docs/forwarding.md, "Limits"). */
export const TEMPLATE_LIMITS = { maxTokens: 10, maxPlaceholders: 100, maxDepth: 32 } as const;

export type JsonTemplate =
  | { readonly kind: "text"; readonly text: TemplateText }
  | { readonly kind: "value"; readonly value: null | boolean | number }
  | { readonly kind: "array"; readonly items: readonly JsonTemplate[] }
  | { readonly kind: "object"; readonly entries: readonly (readonly [string, JsonTemplate])[] };

export type BodyTemplate =
  | { readonly kind: "none" }
  | { readonly kind: "json"; readonly root: JsonTemplate }
  | { readonly kind: "form"; readonly entries: readonly (readonly [string, TemplateText])[] };

export interface ForwardTemplate {
  readonly body: BodyTemplate;
  /** Lower-case names; Content-Type is added from `content_type` when there is a body. */
  readonly headers: readonly (readonly [string, TemplateText])[];
  /** Distinct token ids, in order of first use. */
  readonly tokenIds: readonly string[];
  /** Distinct fields used, in CARD_FIELDS order (for the audit event). */
  readonly fields: readonly CardField[];
  /** Tokens whose CVC the template uses. */
  readonly cvcTokenIds: readonly string[];
}

export type CompiledTemplate =
  | { readonly ok: true; readonly template: ForwardTemplate }
  | { readonly ok: false; readonly issues: readonly FieldError[] };

const PLAIN_SEGMENT = /^[A-Za-z0-9_.-]{1,64}$/;
const LONG_DIGIT_RUN = /\d{12}/;
/** A key is shown in a path only when it is a plain name; anything else (a card?) is `*`. */
const segment = (key: string): string =>
  PLAIN_SEGMENT.test(key) && !LONG_DIGIT_RUN.test(key) ? key : "*";

/** Walks the caller's template once, collecting placeholders and every problem found. */
class Compiler {
  readonly issues: FieldError[] = [];
  readonly tokens = new Set<string>();
  readonly fields = new Set<CardField>();
  readonly cvcTokens = new Set<string>();
  placeholders = 0;

  text(value: string, path: string): TemplateText | undefined {
    const parsed = parseTemplateText(value, path);
    if (!parsed.ok) {
      this.issues.push(parsed.issue);
      return undefined;
    }
    for (const part of parsed.text) {
      if (typeof part === "string") continue;
      this.placeholders++;
      this.tokens.add(part.tokenId);
      this.fields.add(part.field);
      if (part.field === "cvc") this.cvcTokens.add(part.tokenId);
    }
    return parsed.text;
  }

  noPlaceholder(value: string, path: string): void {
    if (value.includes("{{")) {
      const message = "Placeholders are allowed only in body values and header values.";
      this.issues.push(issue(path, "PLACEHOLDER_NOT_ALLOWED", message));
    }
  }

  json(value: unknown, path: string, depth: number): JsonTemplate {
    if (depth > TEMPLATE_LIMITS.maxDepth) {
      const message = `The body nests deeper than ${TEMPLATE_LIMITS.maxDepth} levels.`;
      this.issues.push(issue(path, "TEMPLATE_TOO_DEEP", message));
      return { kind: "value", value: null };
    }
    if (typeof value === "string") return { kind: "text", text: this.text(value, path) ?? [] };
    if (Array.isArray(value)) {
      return {
        kind: "array",
        items: value.map((item, i) => this.json(item, `${path}.${i}`, depth + 1)),
      };
    }
    if (value !== null && typeof value === "object") {
      const entries = Object.entries(value).map(([key, item]) => {
        const at = `${path}.${segment(key)}`;
        this.noPlaceholder(key, at);
        return [key, this.json(item, at, depth + 1)] as const;
      });
      return { kind: "object", entries };
    }
    return { kind: "value", value: value as null | boolean | number };
  }

  form(value: unknown): BodyTemplate {
    if (value === null || typeof value !== "object" || Array.isArray(value)) {
      const message = "A form body is an object of string values.";
      this.issues.push(issue("body", "FORM_VALUE_INVALID", message));
      return { kind: "none" };
    }
    const entries: (readonly [string, TemplateText])[] = [];
    for (const [key, item] of Object.entries(value)) {
      const at = `body.${segment(key)}`;
      this.noPlaceholder(key, at);
      if (typeof item !== "string") {
        this.issues.push(issue(at, "FORM_VALUE_INVALID", "A form value must be a string."));
        continue;
      }
      entries.push([key, this.text(item, at) ?? []]);
    }
    return { kind: "form", entries };
  }

  headers(headers: Readonly<Record<string, string>>): (readonly [string, TemplateText])[] {
    const out: (readonly [string, TemplateText])[] = [];
    for (const [name, value] of Object.entries(headers)) {
      const lower = name.toLowerCase();
      const at = `headers.${segment(lower)}`;
      // The same rules safe-fetch applies (names, hop-by-hop headers, CR/LF/NUL in values);
      // Content-Type comes from `content_type`, so the body and its type cannot disagree.
      const refused =
        lower === "content-type" ||
        !checkRequestHeaders({ [name]: value }, defaultHeaderAllowlist).ok;
      if (refused) {
        const message = "This header may not be set on a forwarded request (docs/forwarding.md).";
        this.issues.push(issue(at, "HEADER_NOT_ALLOWED", message));
        continue;
      }
      const text = this.text(value, at);
      if (text !== undefined) out.push([lower, text]);
    }
    return out;
  }
}

function bodyOf(compiler: Compiler, input: ForwardTemplateInput): BodyTemplate {
  if (input.body === undefined) return { kind: "none" };
  if (input.method === "GET") {
    compiler.issues.push(issue("body", "BODY_NOT_ALLOWED", "A GET request carries no body."));
    return { kind: "none" };
  }
  return input.content_type === FORM_CONTENT_TYPE
    ? compiler.form(input.body)
    : { kind: "json", root: compiler.json(input.body, "body", 0) };
}

function limitIssues(compiler: Compiler): FieldError[] {
  const issues: FieldError[] = [];
  if (compiler.tokens.size > TEMPLATE_LIMITS.maxTokens) {
    const message = `A request may name at most ${TEMPLATE_LIMITS.maxTokens} distinct tokens.`;
    issues.push(issue("body", "TOO_MANY_TOKENS", message));
  }
  if (compiler.placeholders > TEMPLATE_LIMITS.maxPlaceholders) {
    const message = `A request may hold at most ${TEMPLATE_LIMITS.maxPlaceholders} placeholders.`;
    issues.push(issue("body", "TOO_MANY_PLACEHOLDERS", message));
  }
  if (compiler.issues.length === 0 && compiler.placeholders === 0) {
    const message = "The forward proxy is for card data: name at least one token field.";
    issues.push(issue("body", "PLACEHOLDER_REQUIRED", message));
  }
  return issues;
}

/**
 * Checks and compiles a forward request's template: placeholders in JSON string values, form
 * values and header values only (never in the URL, keys or header names: card data never goes
 * in a URL, PCI DSS 3.5.1 / 4.2.1, and would be logged by every proxy on the way).
 */
export function compileForwardTemplate(input: ForwardTemplateInput): CompiledTemplate {
  const compiler = new Compiler();
  compiler.noPlaceholder(input.url, "url");
  const headers = compiler.headers(input.headers ?? {});
  const body = bodyOf(compiler, input);
  const issues = [...compiler.issues, ...limitIssues(compiler)];
  if (issues.length > 0) return { ok: false, issues: issues.slice(0, 20) };
  const fields = (["number", "exp_month", "exp_year", "name", "cvc"] as const).filter((f) =>
    compiler.fields.has(f),
  );
  return {
    ok: true,
    template: {
      body,
      headers,
      tokenIds: [...compiler.tokens],
      fields,
      cvcTokenIds: [...compiler.cvcTokens],
    },
  };
}

function renderJson(node: JsonTemplate, valuesOf: ValuesOf): unknown {
  switch (node.kind) {
    case "text":
      return hasPlaceholders(node.text)
        ? renderJsonString(node.text, valuesOf)
        : node.text.join("");
    case "value":
      return node.value;
    case "array":
      return node.items.map((item) => renderJson(item, valuesOf));
    case "object": {
      const out: Record<string, unknown> = Object.create(null);
      for (const [key, item] of node.entries) out[key] = renderJson(item, valuesOf);
      return out;
    }
  }
}

/** The body as bytes (the caller zeroes them once sent), or undefined for none. */
export function renderBody(body: BodyTemplate, valuesOf: ValuesOf): Buffer | undefined {
  switch (body.kind) {
    case "none":
      return undefined;
    case "json":
      return Buffer.from(JSON.stringify(renderJson(body.root, valuesOf)), "utf8");
    case "form": {
      const form = new URLSearchParams();
      for (const [key, text] of body.entries) form.append(key, renderText(text, valuesOf));
      return Buffer.from(form.toString(), "utf8");
    }
  }
}

/** The header values with placeholders filled, plus Content-Type when there is a body. */
export function renderHeaders(
  template: ForwardTemplate,
  contentType: ForwardContentType | undefined,
  valuesOf: ValuesOf,
): Record<string, string> {
  const out: Record<string, string> = Object.create(null);
  for (const [name, text] of template.headers) out[name] = renderText(text, valuesOf);
  if (template.body.kind !== "none") out["content-type"] = contentType ?? JSON_CONTENT_TYPE;
  return out;
}

/** The headers as declared (placeholders unfilled): enough for safe-fetch's name checks. */
export function declaredHeaders(
  input: ForwardTemplateInput,
  template: ForwardTemplate,
): Record<string, string> {
  const out: Record<string, string> = Object.create(null);
  for (const [name] of template.headers) out[name] = "-";
  if (template.body.kind !== "none") out["content-type"] = input.content_type ?? JSON_CONTENT_TYPE;
  return out;
}
