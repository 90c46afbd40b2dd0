import { describe, expect, it } from "vitest";
import { checkDestination } from "../../../src/outbound/destination.js";
import { checkDestinationUrl } from "../../../src/services/webhooks/outbound/destination-url.js";

describe("event destination URLs at registration", () => {
  it("accepts a public https URL; its host, port and path are its own allowlist entry", () => {
    const checked = checkDestinationUrl("https://hooks.shop.example.com:8443/payvault/events?x=1");
    expect(checked.ok).toBe(true);
    if (!checked.ok) return;
    expect(checked.allowlist).toEqual([
      { host: "hooks.shop.example.com", port: 8443, pathPrefix: "/payvault/events" },
    ]);
    const same = checkDestination(
      "https://hooks.shop.example.com:8443/payvault/events?x=1",
      checked.allowlist,
    );
    expect(same.ok).toBe(true);
    expect(
      checkDestination("https://hooks.shop.example.com:8443/other", checked.allowlist).ok,
    ).toBe(false);
    expect(
      checkDestination("https://evil.example.com:8443/payvault/events", checked.allowlist).ok,
    ).toBe(false);
  });

  it.each([
    "http://hooks.shop.example.com/events",
    "ftp://hooks.shop.example.com/events",
    "https://user:pw@hooks.shop.example.com/events",
    "https://hooks.shop.example.com/events#frag",
    "https://hooks.shop.example.com/a/%2e%2e/b%2fc",
    "https://hooks.shop.example.com//events",
    "https://2130706433/events",
    "not a url",
    "https://hooks.shop.example.com/ events",
  ])("refuses %s as DESTINATION_URL_INVALID", (url) => {
    const checked = checkDestinationUrl(url);
    expect(checked.ok).toBe(false);
    if (!checked.ok) expect(checked.code).toBe("DESTINATION_URL_INVALID");
  });

  it.each([
    "https://127.0.0.1/events",
    "https://10.0.0.1/events",
    "https://192.168.1.20/events",
    "https://169.254.169.254/latest/meta-data",
    "https://[::1]/events",
    "https://[::ffff:10.0.0.1]/events",
    "https://[fd00::1]/events",
    "https://0.0.0.0/events",
    "https://localhost/events",
    "https://metadata.google.internal/computeMetadata",
    "https://intranet/events",
  ])("refuses %s as DESTINATION_ADDRESS_REFUSED", (url) => {
    const checked = checkDestinationUrl(url);
    expect(checked.ok).toBe(false);
    if (!checked.ok) expect(checked.code).toBe("DESTINATION_ADDRESS_REFUSED");
  });

  it("lets loopback through only with the test switch, and nothing else", () => {
    expect(checkDestinationUrl("https://127.0.0.1:9443/events", true).ok).toBe(true);
    expect(checkDestinationUrl("https://localhost:9443/events", true).ok).toBe(true);
    expect(checkDestinationUrl("https://10.0.0.1/events", true).ok).toBe(false);
    expect(checkDestinationUrl("https://169.254.169.254/", true).ok).toBe(false);
  });
});
