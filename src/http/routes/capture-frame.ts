import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, isAbsolute, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { Brand, BrandRules } from "../../domain/iin-table.js";
import { brandRules, IIN_RANGES } from "../../domain/iin-table.js";
import { VaultError } from "../../errors/registry.js";
import type { Logger } from "../../log/logger.js";
import type {
  CaptureSession,
  CaptureSessionVerifier,
} from "../../services/capture/capture-session.js";
import { CaptureSessionError } from "../../services/capture/capture-session.js";
import { parseOrigin } from "../../services/capture/capture-sessions.js";

export interface CaptureFrameDeps {
  readonly sessions: CaptureSessionVerifier;
  /** The vault's origin as browsers reach it (the capture claims' `aud`); read per request. */
  readonly publicOrigin: string | (() => string);
  readonly logger: Logger;
}

/** The frame's files: static/capture at the package root (next to dist/ and src/). */
const CAPTURE_DIR = fileURLToPath(new URL("../../../static/capture/", import.meta.url));
const CONTENT_TYPES: Readonly<Record<string, string>> = {
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json; charset=utf-8",
};
/** The jose modules the frame imports; the files they import are found from these. */
const JOSE_ENTRY_POINTS = ["jwe/compact/encrypt.js", "key/import.js", "util/decode_jwt.js"];
const RELATIVE_IMPORT = /(?:\bfrom|\bimport)\s*\(?\s*["']([^"']+)["']/g;
/** A compact JWS: three base64url parts (RFC 7515 §7.1). The verifier has the final word. */
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
const MAX_SESSION_CHARS = 4096;
const TEMPLATE_SLOT = /\{\{(\w+)\}\}/g;
const FRAME_SLOTS = ["session", "vaultOrigin", "parentOrigins", "jose"] as const;
type FrameValues = Record<(typeof FRAME_SLOTS)[number], string>;

interface Asset {
  readonly body: Buffer;
  readonly contentType: string;
  readonly etag: string;
  readonly cacheControl: string;
}

function asset(body: Buffer, path: string, cacheControl: string): Asset {
  const type = CONTENT_TYPES[path.slice(path.lastIndexOf("."))];
  if (type === undefined) throw new Error(`capture assets: no content type for ${path}`);
  const digest = createHash("sha256").update(body).digest("base64url").slice(0, 22);
  return { body, contentType: type, etag: `"${digest}"`, cacheControl };
}

/** Unversioned paths are revalidated on every load (ETag), so a new release shows at once. */
const REVALIDATE = "no-cache";
/** A path that names the jose version never changes content (RFC 8246). */
const IMMUTABLE = "public, max-age=31536000, immutable";

/** The frame's own scripts and styles: every .js and .css in static/capture. */
function ownAssets(): Map<string, Asset> {
  const assets = new Map<string, Asset>();
  for (const name of readdirSync(CAPTURE_DIR)) {
    if (!name.endsWith(".js") && !name.endsWith(".css")) continue;
    assets.set(name, asset(readFileSync(join(CAPTURE_DIR, name)), name, REVALIDATE));
  }
  return assets;
}

/**
 * jose's browser build (dist/webapi: ES modules on WebCrypto): the entry points and every file
 * they import, read once. Anything not in that closure is never served.
 */
function joseAssets(): { version: string; assets: Map<string, Asset> } {
  const require = createRequire(import.meta.url);
  const root = dirname(require.resolve("jose"));
  const { version } = JSON.parse(readFileSync(require.resolve("jose/package.json"), "utf8")) as {
    version: string;
  };
  const assets = new Map<string, Asset>();
  const pending = [...JOSE_ENTRY_POINTS];
  while (pending.length > 0) {
    const path = pending.pop() as string;
    if (assets.has(path)) continue;
    const body = readFileSync(join(root, path));
    assets.set(path, asset(body, path, IMMUTABLE));
    for (const [, specifier] of body.toString("utf8").matchAll(RELATIVE_IMPORT)) {
      const target = relative(root, resolve(root, dirname(path), specifier as string));
      if (!specifier?.startsWith(".") || target.startsWith("..") || isAbsolute(target)) {
        throw new Error("capture assets: jose imports a module outside its browser build");
      }
      pending.push(target.split("\\").join("/"));
    }
  }
  return { version, assets };
}

/** The one IIN table (src/domain/iin-table.ts) as the frame reads it: never a second copy. */
function brandsAsset(): Asset {
  const brands = [...new Set(IIN_RANGES.map((range) => range.brand)), "unknown"] as Brand[];
  const rules: Record<string, BrandRules> = {};
  for (const brand of brands) rules[brand] = brandRules(brand);
  const json = JSON.stringify({ ranges: IIN_RANGES, rules });
  return asset(Buffer.from(json, "utf8"), "brands.json", REVALIDATE);
}

const HTML_ESCAPES: Readonly<Record<string, string>> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&#39;",
};

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (char) => HTML_ESCAPES[char] as string);
}

function frameTemplate(): (values: FrameValues) => string {
  const template = readFileSync(join(CAPTURE_DIR, "frame.html"), "utf8");
  const slots = new Set([...template.matchAll(TEMPLATE_SLOT)].map((match) => match[1]));
  if (slots.size !== FRAME_SLOTS.length || !FRAME_SLOTS.every((slot) => slots.has(slot))) {
    throw new Error("capture frame: frame.html's {{slots}} do not match the route's values");
  }
  return (values) =>
    template.replace(TEMPLATE_SLOT, (_, slot: (typeof FRAME_SLOTS)[number]) =>
      escapeHtml(values[slot]),
    );
}

/**
 * The frame's policy (CSP Level 3): script, style and fetch from the vault only, nothing
 * inline, no form submission, and embedding only by the session's origins (frame-ancestors;
 * X-Frame-Options cannot list origins, so it is removed, and frame-ancestors governs).
 */
function frameCsp(parentOrigins: readonly string[]): string {
  return [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "connect-src 'self'",
    "img-src 'self' data:",
    "form-action 'none'",
    "base-uri 'none'",
    `frame-ancestors ${parentOrigins.join(" ")}`,
  ].join("; ");
}

const ERROR_PAGE_CSP =
  "default-src 'none'; style-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'";

function documentHeaders(reply: FastifyReply, csp: string): FastifyReply {
  return reply
    .header("content-type", "text/html; charset=utf-8")
    .header("content-security-policy", csp)
    .header("cache-control", "no-store")
    .header("referrer-policy", "no-referrer")
    .header("x-content-type-options", "nosniff");
}

function sendAsset(request: FastifyRequest, reply: FastifyReply, found: Asset): FastifyReply {
  reply
    .header("content-type", found.contentType)
    .header("cache-control", found.cacheControl)
    .header("etag", found.etag)
    .header("x-content-type-options", "nosniff")
    // Only the vault's own frame loads these (CORP: no other site may embed them).
    .header("cross-origin-resource-policy", "same-origin");
  const tags = request.headers["if-none-match"]?.split(",").map((tag) => tag.trim());
  if (tags?.includes(found.etag) || tags?.includes("*")) return reply.code(304).send();
  return reply.send(found.body);
}

/** The small page for a missing, malformed or invalid session: no detail, never framed. */
function refuse(reply: FastifyReply, status: 400 | 401, page: string): FastifyReply {
  return documentHeaders(reply.code(status), ERROR_PAGE_CSP)
    .header("x-frame-options", "DENY")
    .send(page);
}

function frameHandler(
  deps: CaptureFrameDeps,
  render: (values: FrameValues) => string,
  errorPage: string,
  joseBase: string,
) {
  const configured = deps.publicOrigin;
  const publicOrigin = typeof configured === "string" ? () => configured : configured;
  return async (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> => {
    const session = (request.query as Record<string, unknown>).session;
    if (typeof session !== "string" || session.length > MAX_SESSION_CHARS) {
      return refuse(reply, 400, errorPage);
    }
    if (!COMPACT_JWS.test(session)) return refuse(reply, 400, errorPage);
    let verified: CaptureSession;
    try {
      verified = await deps.sessions.verify(session);
    } catch (err) {
      if (err instanceof CaptureSessionError) return refuse(reply, 401, errorPage);
      throw err;
    }
    // The verifier checked the origins; they go into a header, so check them again here.
    const origins = verified.origins.filter((origin) => parseOrigin(origin) === origin);
    if (origins.length === 0 || origins.length !== verified.origins.length) {
      deps.logger.warn({ session_id: verified.id }, "capture session with an unusable origin");
      return refuse(reply, 401, errorPage);
    }
    reply.removeHeader("x-frame-options");
    const values = {
      session,
      vaultOrigin: publicOrigin(),
      parentOrigins: origins.join(" "),
      jose: joseBase,
    };
    return documentHeaders(reply, frameCsp(origins)).send(render(values));
  };
}

/**
 * GET /capture/frame?session=… — the card capture form for the merchant's iframe (issue 4).
 * GET /capture/assets/* — its scripts and styles, brands.json and jose's browser build.
 *
 * Every file is read and every path allowlisted here, once, at start: a request can only name
 * a key of that map, so no path from a request ever reaches the file system. The session is a
 * bearer credential in the frame's URL: the vault logs route patterns, never URLs.
 */
export function registerCaptureFrame(app: FastifyInstance, deps: CaptureFrameDeps): void {
  const jose = joseAssets();
  const josePrefix = `jose/${jose.version}`;
  const assets = ownAssets();
  assets.set("brands.json", brandsAsset());
  for (const [path, found] of jose.assets) assets.set(`${josePrefix}/${path}`, found);
  const errorPage = readFileSync(join(CAPTURE_DIR, "error.html"), "utf8");
  const joseBase = `/capture/assets/${josePrefix}`;
  app.get("/capture/frame", frameHandler(deps, frameTemplate(), errorPage, joseBase));
  app.get("/capture/assets/*", async (request, reply) => {
    const found = assets.get((request.params as { "*": string })["*"]);
    if (found === undefined) throw new VaultError("ROUTE_NOT_FOUND");
    return sendAsset(request, reply, found);
  });
}
