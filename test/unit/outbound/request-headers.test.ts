import { describe, expect, it } from "vitest";
import {
  checkRequestHeaders,
  defaultHeaderAllowlist,
} from "../../../src/outbound/request-headers.js";

describe("checkRequestHeaders", () => {
  it("lower-cases allowed headers and asks for an identity-encoded body", () => {
    expect(
      checkRequestHeaders(
        { "Content-Type": "application/json", Authorization: "Bearer sk_test" },
        defaultHeaderAllowlist,
      ),
    ).toEqual({
      ok: true,
      headers: {
        "content-type": "application/json",
        authorization: "Bearer sk_test",
        "accept-encoding": "identity",
      },
    });
  });

  it.each([
    "Host",
    "Content-Length",
    "Transfer-Encoding",
    "Connection",
    "Upgrade",
    "Proxy-Authorization",
    "Expect",
    "Accept-Encoding",
  ])("refuses the client-owned header %s even when the hook allows everything", (name) => {
    expect(checkRequestHeaders({ [name]: "x" }, () => true)).toEqual({
      ok: false,
      header: name.toLowerCase(),
    });
  });

  it("refuses what the hook does not allow, naming the header but not its value", () => {
    const result = checkRequestHeaders({ "X-Card": "4242424242424242" }, defaultHeaderAllowlist);
    expect(result).toEqual({ ok: false, header: "x-card" });
    expect(JSON.stringify(result)).not.toContain("4242");
  });

  it("lets a custom hook widen the list", () => {
    const allow = (name: string) => name === "stripe-version";
    expect(checkRequestHeaders({ "Stripe-Version": "2024-06-20" }, allow).ok).toBe(true);
  });

  it.each([
    [{ "x-a": "v\r\nInjected: 1" }, "x-a"],
    [{ "x-a": "v\n" }, "x-a"],
    [{ "x-a": "v\u0000" }, "x-a"],
    [{ "bad name": "v" }, "(invalid name)"],
    [{ "x-a\r\nInjected": "v" }, "(invalid name)"],
    [{ "X-A": "1", "x-a": "2" }, "x-a"],
  ])("refuses %j", (headers, header) => {
    expect(checkRequestHeaders(headers, () => true)).toEqual({ ok: false, header });
  });

  it("treats names like constructor and __proto__ as ordinary headers", () => {
    const headers = JSON.parse('{"constructor":"1","__proto__":"2"}') as Record<string, string>;
    const result = checkRequestHeaders(headers, () => true);
    expect(result.ok && { ...result.headers }).toEqual({
      constructor: "1",
      ["__proto__"]: "2",
      "accept-encoding": "identity",
    });
  });
});
