import { describe, expect, it } from "vitest";
import {
  type AllowlistEntry,
  checkDestination,
  compileAllowlist,
  InvalidAllowlistEntry,
} from "../../../src/outbound/destination.js";

const allowlist = compileAllowlist([
  { host: "api.processor.example", pathPrefix: "/v1/charges" },
  { host: "hooks.merchant.example", pathPrefix: "/payvault/", port: 8443 },
  { host: "127.0.0.1", pathPrefix: "/" },
  { host: "[::1]", pathPrefix: "/" },
]);

const refusalOf = (url: string): string => {
  const result = checkDestination(url, allowlist);
  return result.ok ? "ok" : result.refusal;
};

describe("checkDestination", () => {
  it("admits an allowlisted https URL and keeps path and query as sent", () => {
    expect(
      checkDestination("https://api.processor.example/v1/charges?x=1#frag", allowlist),
    ).toEqual({
      ok: true,
      destination: { host: "api.processor.example", port: 443, path: "/v1/charges?x=1" },
    });
  });

  it.each([
    ["https://API.Processor.Example/v1/charges", "api.processor.example"],
    ["https://api.processor.example./v1/charges", "api.processor.example"],
    ["https://api.processor.example:443/v1/charges", "api.processor.example"],
    ["https://[::1]/", "::1"],
  ])("normalizes the host of %s", (url, host) => {
    const result = checkDestination(url, allowlist);
    expect(result.ok && result.destination.host).toBe(host);
  });

  it.each([
    // Path prefix on segment boundaries, after WHATWG dot-segment removal.
    ["https://api.processor.example/v1/charges/ch_1/capture", "ok"],
    ["https://api.processor.example/v1/chargesX", "NOT_IN_ALLOWLIST"],
    ["https://api.processor.example/v1/refunds", "NOT_IN_ALLOWLIST"],
    ["https://api.processor.example/v1/charges/../refunds", "NOT_IN_ALLOWLIST"],
    ["https://api.processor.example/v1/charges/%2e%2e/refunds", "NOT_IN_ALLOWLIST"],
    ["https://api.processor.example/v1/charges/%2E%2e/%2e%2E/admin", "NOT_IN_ALLOWLIST"],
    ["https://api.processor.example/v1/charges/.%2e/admin", "NOT_IN_ALLOWLIST"],
    ["https://api.processor.example/v1/charges/./ch_1", "ok"],
    ["https://api.processor.example/v1/x/../charges", "ok"],
    // Spellings some servers still resolve: refused outright.
    ["https://api.processor.example/v1/charges/..%2fadmin", "AMBIGUOUS_PATH"],
    ["https://api.processor.example/v1/charges/..%2Fadmin", "AMBIGUOUS_PATH"],
    ["https://api.processor.example/v1/charges/..%5cadmin", "AMBIGUOUS_PATH"],
    ["https://api.processor.example/v1/charges/%252e%252e/admin", "AMBIGUOUS_PATH"],
    ["https://api.processor.example/v1/charges/..;/admin", "AMBIGUOUS_PATH"],
    ["https://api.processor.example/v1/charges/%00", "AMBIGUOUS_PATH"],
    ["https://api.processor.example/v1/charges/%zz", "AMBIGUOUS_PATH"],
    ["https://api.processor.example/v1//charges", "AMBIGUOUS_PATH"],
    ["https://api.processor.example/v1/charges//x", "AMBIGUOUS_PATH"],
    ["https://api.processor.example//v1/charges", "AMBIGUOUS_PATH"],
    // Scheme, userinfo and raw-text tricks.
    ["http://api.processor.example/v1/charges", "NOT_HTTPS"],
    ["ftp://api.processor.example/v1/charges", "NOT_HTTPS"],
    ["file:///etc/passwd", "NOT_HTTPS"],
    ["https:api.processor.example/v1/charges", "INVALID_URL"],
    ["https:/api.processor.example/v1/charges", "INVALID_URL"],
    ["HTTPS://api.processor.example/v1/charges", "ok"],
    ["https://user:pw@api.processor.example/v1/charges", "USERINFO"],
    ["https://@api.processor.example/v1/charges", "USERINFO"],
    ["https://api.processor.example@evil.example/v1/charges", "USERINFO"],
    ["https://api.processor.example\\@evil.example/v1/charges", "INVALID_URL"],
    ["https://api.processor.example/v1/charges\\..\\..\\admin", "INVALID_URL"],
    ["https://api.proc\tessor.example/v1/charges", "INVALID_URL"],
    [" https://api.processor.example/v1/charges", "INVALID_URL"],
    ["https://api.processor.example/v1/charges\n", "INVALID_URL"],
    ["not a url", "INVALID_URL"],
    [`https://api.processor.example/v1/charges/${"a".repeat(9000)}`, "INVALID_URL"],
    // Host and port must match exactly; no implicit subdomains.
    ["https://evil.api.processor.example/v1/charges", "NOT_IN_ALLOWLIST"],
    ["https://processor.example/v1/charges", "NOT_IN_ALLOWLIST"],
    ["https://api.processor.example.evil.example/v1/charges", "NOT_IN_ALLOWLIST"],
    ["https://api.processor.example:8443/v1/charges", "NOT_IN_ALLOWLIST"],
    ["https://hooks.merchant.example:8443/payvault/events", "ok"],
    ["https://hooks.merchant.example/payvault/events", "NOT_IN_ALLOWLIST"],
    ["https://hooks.merchant.example:8443/payvault", "NOT_IN_ALLOWLIST"],
    // Non-canonical IPv4 literals, which WHATWG rewrites to 127.0.0.1.
    ["https://127.0.0.1/", "ok"],
    ["https://2130706433/", "NON_CANONICAL_HOST"],
    ["https://0177.0.0.1/", "NON_CANONICAL_HOST"],
    ["https://0x7f.1/", "NON_CANONICAL_HOST"],
    ["https://0x7f000001/", "NON_CANONICAL_HOST"],
    ["https://127.1/", "NON_CANONICAL_HOST"],
    ["https://127.0.0.01/", "NON_CANONICAL_HOST"],
    ["https://[fe80::1%25eth0]/", "INVALID_URL"],
  ])("%s → %s", (url, expected) => {
    expect(refusalOf(url)).toBe(expected);
  });

  it("WHATWG parsing turns the non-canonical IPv4 forms into the dotted quad", () => {
    for (const host of ["2130706433", "0177.0.0.1", "0x7f.1", "127.1"]) {
      expect(new URL(`https://${host}/`).hostname).toBe("127.0.0.1");
    }
  });
});

describe("compileAllowlist", () => {
  it("normalizes host case, trailing dot and IDNA", () => {
    expect(
      compileAllowlist([
        { host: "API.Processor.Example.", pathPrefix: "/v1" },
        { host: "bücher.example", pathPrefix: "/", port: 8443 },
      ]),
    ).toEqual([
      { host: "api.processor.example", pathPrefix: "/v1", port: 443 },
      { host: "xn--bcher-kva.example", pathPrefix: "/", port: 8443 },
    ]);
  });

  it.each<[AllowlistEntry, string]>([
    [{ host: "*.processor.example", pathPrefix: "/" }, "host"],
    [{ host: "*", pathPrefix: "/" }, "host"],
    [{ host: "api.processor.example:8443", pathPrefix: "/" }, "host"],
    [{ host: "user@api.processor.example", pathPrefix: "/" }, "host"],
    [{ host: "api.processor.example/v1", pathPrefix: "/" }, "host"],
    [{ host: "", pathPrefix: "/" }, "host"],
    [{ host: "0x7f.1", pathPrefix: "/" }, "host"],
    [{ host: "api.processor.example", pathPrefix: "v1" }, "pathPrefix"],
    [{ host: "api.processor.example", pathPrefix: "" }, "pathPrefix"],
    [{ host: "api.processor.example", pathPrefix: "/v1/../admin" }, "pathPrefix"],
    [{ host: "api.processor.example", pathPrefix: "/v1//x" }, "pathPrefix"],
    [{ host: "api.processor.example", pathPrefix: "/v1?x=1" }, "pathPrefix"],
    [{ host: "api.processor.example", pathPrefix: "/v1 x" }, "pathPrefix"],
    [{ host: "api.processor.example", pathPrefix: "/", port: 0 }, "port"],
    [{ host: "api.processor.example", pathPrefix: "/", port: 65536 }, "port"],
    [{ host: "api.processor.example", pathPrefix: "/", port: 443.5 }, "port"],
  ])("refuses %j (%s)", (entry, field) => {
    expect(() => compileAllowlist([entry])).toThrow(InvalidAllowlistEntry);
    try {
      compileAllowlist([entry]);
    } catch (error) {
      expect(error).toMatchObject({ code: "INVALID_ALLOWLIST_ENTRY", field });
    }
  });
});
