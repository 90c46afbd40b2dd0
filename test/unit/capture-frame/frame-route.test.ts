import type { FastifyInstance } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { brandRules, IIN_RANGES } from "../../../src/domain/iin-table.js";
import { errorHandler } from "../../../src/http/error-handler.js";
import { createHttpStack } from "../../../src/http/http-stack.js";
import { PROBLEM_CONTENT_TYPE, problemOf } from "../../../src/http/problem.js";
import { registerCaptureFrame } from "../../../src/http/routes/capture-frame.js";
import { createLogger } from "../../../src/log/logger.js";
import type { CaptureSession } from "../../../src/services/capture/capture-session.js";
import { CaptureSessionError } from "../../../src/services/capture/capture-session.js";
import { LogCapture } from "../../support/vault-harness.js";

/** Session tokens the stand-in verifier knows (compact-JWS shaped; the route checks the shape). */
const SESSIONS: Readonly<Record<string, CaptureSession>> = {
  "eyJhbGciOiJFUzI1NiJ9.eyJqdGkiOiJjc18xIn0.c2ln": session(["https://shop.test"]),
  "eyJhbGciOiJFUzI1NiJ9.eyJqdGkiOiJjc18yIn0.c2ln": session([
    "https://shop.test",
    "http://localhost:3000",
  ]),
  "eyJhbGciOiJFUzI1NiJ9.eyJqdGkiOiJjc18zIn0.c2ln": session(["https://shop.test; script-src *"]),
};
const [ONE_ORIGIN, TWO_ORIGINS, BAD_ORIGIN] = Object.keys(SESSIONS) as [string, string, string];
const UNKNOWN = "eyJhbGciOiJFUzI1NiJ9.eyJqdGkiOiJjc185In0.c2ln";
const BROKEN = "eyJhbGciOiJFUzI1NiJ9.eyJqdGkiOiJjc184In0.YnJva2Vu";

function session(origins: string[]): CaptureSession {
  return {
    id: "cs_test",
    tenantId: "ten_test",
    environment: "test",
    origins,
    expiresAt: new Date(Date.now() + 600_000),
  };
}

/** As app.ts: the headers it puts on every response (frame-ancestors 'none', X-Frame-Options DENY). */
const APP_HEADERS = {
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "referrer-policy": "no-referrer",
  "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
  "cache-control": "no-store",
};

const FRAME_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; " +
  "img-src 'self' data:; form-action 'none'; base-uri 'none'; frame-ancestors https://shop.test";

let app: FastifyInstance;
const logs = new LogCapture();
let vaultOrigin = "https://vault.test";

beforeAll(async () => {
  // The vault's own HTTP stack (one log line per request) with app.ts's header hook in front.
  app = createHttpStack(createLogger("info", logs), undefined);
  app.addHook("onRequest", async (_request, reply) => {
    reply.headers(APP_HEADERS);
  });
  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler((request, reply) =>
    reply
      .code(404)
      .header("content-type", PROBLEM_CONTENT_TYPE)
      .send(problemOf("ROUTE_NOT_FOUND", request.id)),
  );
  registerCaptureFrame(app, {
    sessions: {
      async verify(token) {
        if (token === BROKEN) throw new Error("the session store is down");
        const found = SESSIONS[token];
        if (found === undefined) throw new CaptureSessionError();
        return found;
      },
    },
    publicOrigin: () => vaultOrigin,
    logger: createLogger("info", logs),
  });
  await app.ready();
});
afterAll(async () => app?.close());

const frame = (query: string) => app.inject({ method: "GET", url: `/capture/frame${query}` });
const asset = (path: string, headers: Record<string, string> = {}) =>
  app.inject({ method: "GET", url: `/capture/assets/${path}`, headers });

describe("GET /capture/frame", () => {
  it("serves the form with the frame's CSP, framable only by the session's origins", async () => {
    const res = await frame(`?session=${ONE_ORIGIN}`);
    expect(res.statusCode).toBe(200);
    expect(res.headers["content-type"]).toBe("text/html; charset=utf-8");
    expect(res.headers["content-security-policy"]).toBe(FRAME_CSP);
    expect(res.headers["x-frame-options"]).toBeUndefined();
    expect(res.headers["cache-control"]).toBe("no-store");
    expect(res.headers["referrer-policy"]).toBe("no-referrer");
    expect(res.headers["x-content-type-options"]).toBe("nosniff");
  });

  it("lists every allowed origin in frame-ancestors and in the form's data attribute", async () => {
    const res = await frame(`?session=${TWO_ORIGINS}`);
    expect(res.headers["content-security-policy"]).toMatch(
      /; frame-ancestors https:\/\/shop\.test http:\/\/localhost:3000$/,
    );
    expect(res.body).toContain('data-parent-origins="https://shop.test http://localhost:3000"');
  });

  it("passes the session, the vault origin and jose's path in data- attributes, never in script", async () => {
    const res = await frame(`?session=${ONE_ORIGIN}`);
    expect(res.body).toContain(`data-session="${ONE_ORIGIN}"`);
    expect(res.body).toContain('data-vault-origin="https://vault.test"');
    expect(res.body).toMatch(/data-jose="\/capture\/assets\/jose\/\d+\.\d+\.\d+"/);
    // Nothing inline: every script has a src, and there is no style element or attribute.
    const scripts = res.body.match(/<script\b[^>]*>/g) ?? [];
    expect(scripts.length).toBeGreaterThan(0);
    for (const tag of scripts) expect(tag).toMatch(/\ssrc="\/capture\/assets\/[^"]+"/);
    expect(res.body).not.toMatch(/<script\b[^>]*>[^<]+<\/script>/);
    expect(res.body).not.toMatch(/<style\b|\sstyle=|\son[a-z]+=/i);
  });

  it("HTML-escapes what it writes into the page", async () => {
    vaultOrigin = 'https://vault.test/"><script>alert(1)</script>';
    try {
      const res = await frame(`?session=${ONE_ORIGIN}`);
      expect(res.body).toContain(
        'data-vault-origin="https://vault.test/&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"',
      );
    } finally {
      vaultOrigin = "https://vault.test";
    }
  });

  it("has a label for every input, and the autocomplete tokens browsers fill cards with", async () => {
    const { body } = await frame(`?session=${ONE_ORIGIN}`);
    const inputs = body.match(/<input\b[^>]*>/g) ?? [];
    expect(inputs).toHaveLength(4);
    for (const input of inputs) {
      const id = /\sid="([^"]+)"/.exec(input)?.[1];
      expect(body).toContain(`<label for="${id}">`);
      // No name: with script broken a native submission would carry nothing.
      expect(input).not.toMatch(/\sname=/);
    }
    for (const token of ["cc-number", "cc-exp", "cc-csc", "cc-name"]) {
      expect(body).toContain(`autocomplete="${token}"`);
    }
    expect(body).not.toMatch(/<form[^>]*\saction=/);
  });

  it("references only assets the route serves", async () => {
    const { body } = await frame(`?session=${ONE_ORIGIN}`);
    const refs = [...body.matchAll(/\s(?:src|href)="(\/capture\/assets\/[^"]+)"/g)].map(
      (m) => m[1],
    );
    expect(refs.length).toBeGreaterThanOrEqual(4);
    for (const ref of refs) {
      const res = await app.inject({ method: "GET", url: ref as string });
      expect(res.statusCode, ref).toBe(200);
    }
  });

  it("answers a missing or malformed session with 400 and an unframable page without detail", async () => {
    for (const query of [
      "",
      "?session=",
      "?session=a&session=b",
      "?session=not-a-jws",
      `?session=${"a".repeat(3000)}.${"b".repeat(1100)}.c`,
    ]) {
      const res = await frame(query);
      expect(res.statusCode, query).toBe(400);
      expect(res.headers["content-type"]).toBe("text/html; charset=utf-8");
      expect(res.headers["content-security-policy"]).toMatch(/frame-ancestors 'none'$/);
      expect(res.headers["x-frame-options"]).toBe("DENY");
      expect(res.body).toContain("This card form cannot be shown.");
      expect(res.body).not.toMatch(/<script|<form/);
    }
  });

  it("answers an invalid or expired session with 401 and the same page, echoing nothing", async () => {
    const res = await frame(`?session=${UNKNOWN}`);
    expect(res.statusCode).toBe(401);
    expect(res.headers["cache-control"]).toBe("no-store");
    expect(res.headers["content-security-policy"]).toMatch(/frame-ancestors 'none'$/);
    expect(res.body).not.toContain(UNKNOWN);
    expect(res.body).not.toContain("eyJ");
  });

  it("refuses a session whose origin would not be a clean frame-ancestors source", async () => {
    const res = await frame(`?session=${BAD_ORIGIN}`);
    expect(res.statusCode).toBe(401);
    expect(res.headers["content-security-policy"]).not.toContain("script-src *");
  });

  it("lets an unexpected verifier failure go to the error handler (500, no detail)", async () => {
    const res = await frame(`?session=${BROKEN}`);
    expect(res.statusCode).toBe(500);
    expect(res.json()).toMatchObject({ code: "INTERNAL_ERROR" });
    expect(res.body).not.toContain("session store");
  });

  it("logs the route pattern, never the URL with its session", async () => {
    logs.lines.length = 0;
    await frame(`?session=${ONE_ORIGIN}`);
    await frame(`?session=${UNKNOWN}`);
    await frame(`?session=${BAD_ORIGIN}`);
    const requestLines = logs.lines.map((l) => JSON.parse(l)).filter((l) => l.msg === "request");
    expect(requestLines.map((l) => l.route)).toEqual([
      "/capture/frame",
      "/capture/frame",
      "/capture/frame",
    ]);
    for (const token of [ONE_ORIGIN, UNKNOWN, BAD_ORIGIN]) {
      for (const part of token.split(".")) expect(logs.text).not.toContain(part.slice(-12));
    }
  });
});

describe("GET /capture/assets/*", () => {
  it("serves the frame's scripts as text/javascript and its style as text/css, revalidated", async () => {
    for (const [path, type] of [
      ["frame.js", "text/javascript; charset=utf-8"],
      ["card-rules.js", "text/javascript; charset=utf-8"],
      ["frame.css", "text/css; charset=utf-8"],
      ["brands.json", "application/json; charset=utf-8"],
    ] as const) {
      const res = await asset(path);
      expect(res.statusCode, path).toBe(200);
      expect(res.headers["content-type"]).toBe(type);
      expect(res.headers["cache-control"]).toBe("no-cache");
      expect(res.headers.etag).toMatch(/^"[A-Za-z0-9_-]{22}"$/);
      expect(res.headers["x-content-type-options"]).toBe("nosniff");
      expect(res.headers["cross-origin-resource-policy"]).toBe("same-origin");
    }
  });

  it("answers 304 to a matching If-None-Match", async () => {
    const first = await asset("frame.js");
    const again = await asset("frame.js", { "if-none-match": String(first.headers.etag) });
    expect(again.statusCode).toBe(304);
    expect(again.body).toBe("");
    expect((await asset("frame.js", { "if-none-match": '"other"' })).statusCode).toBe(200);
  });

  it("serves brands.json generated from the domain's IIN table", async () => {
    const res = await asset("brands.json");
    const json = res.json() as { ranges: unknown; rules: Record<string, unknown> };
    expect(json.ranges).toEqual(IIN_RANGES);
    for (const brand of [...IIN_RANGES.map((r) => r.brand), "unknown"] as const) {
      expect(json.rules[brand]).toEqual(brandRules(brand));
    }
  });

  it("serves jose's browser build under its version, immutable, and only what the frame imports", async () => {
    const page = await frame(`?session=${ONE_ORIGIN}`);
    const base = /data-jose="\/capture\/assets\/([^"]+)"/.exec(page.body)?.[1] as string;
    for (const path of ["jwe/compact/encrypt.js", "key/import.js", "util/decode_jwt.js"]) {
      const res = await asset(`${base}/${path}`);
      expect(res.statusCode, path).toBe(200);
      expect(res.headers["content-type"]).toBe("text/javascript; charset=utf-8");
      expect(res.headers["cache-control"]).toBe("public, max-age=31536000, immutable");
    }
    // Imported by encrypt.js: served. Not imported by anything the frame loads: never served.
    expect((await asset(`${base}/lib/jwe_encrypt.js`)).statusCode).toBe(200);
    for (const path of ["index.js", "jwks/remote.js", "jwt/decrypt.js", "jws/compact/sign.js"]) {
      expect((await asset(`${base}/${path}`)).statusCode, path).toBe(404);
    }
  });

  it("serves nothing outside its allowlist, however the path is spelt", async () => {
    const page = await frame(`?session=${ONE_ORIGIN}`);
    const base = /data-jose="\/capture\/assets\/([^"]+)"/.exec(page.body)?.[1] as string;
    for (const path of [
      "frame.html",
      "error.html",
      "card-rules.d.ts",
      "../../package.json",
      "..%2f..%2fpackage.json",
      "%2e%2e/%2e%2e/package.json",
      `${base}/../../package.json`,
      `${base}/..%2f..%2fpackage.json`,
      "jose/0.0.0/jwe/compact/encrypt.js",
      "/etc/passwd",
      "%2fetc%2fpasswd",
      "frame.js%00.html",
      "FRAME.JS",
      "",
    ]) {
      const res = await asset(path);
      expect(res.statusCode, path).toBe(404);
      expect(res.headers["content-type"]).toMatch(/^application\/problem\+json/);
    }
  });
});
