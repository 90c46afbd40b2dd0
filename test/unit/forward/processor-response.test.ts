import { describe, expect, it } from "vitest";
import { relayResponse } from "../../../src/services/forward/processor-response.js";

const PAN = "4242424242424242";
const AMEX = "378282246310005";

function response(body: string, headers: Record<string, string | string[]> = {}, status = 200) {
  return { status, headers, body: Buffer.from(body) };
}

describe("relaying the processor's answer", () => {
  it("masks every PAN-looking run in the body to BIN + last 4, plain, spaced or dashed", () => {
    const out = relayResponse(
      response(`{"card":"${PAN}","amex":"3782 822463 10005","other":"4000-0566-5566-5556"}`),
      [],
    );
    expect(out.body).toBe(
      '{"card":"424242******4242","amex":"3782 82**** *0005","other":"4000-05**-****-5556"}',
    );
  });

  it("masks a forwarded number even inside a longer digit run the scanner leaves alone", () => {
    const out = relayResponse(response(`ref=99${PAN}99`), [PAN]);
    expect(out.body).toBe("ref=99424242******424299");
    expect(out.body).not.toContain(PAN);
  });

  it("leaves non-card digits alone (Luhn fails, or too short)", () => {
    const text = '{"id":"ch_1","amount":4242424242424241,"zip":"94107"}';
    expect(relayResponse(response(text), []).body).toBe(text);
  });

  it("relays only allowlisted headers, scrubbed, multi-values joined", () => {
    const out = relayResponse(
      response(
        "{}",
        {
          "content-type": "application/json",
          "request-id": `req_${PAN}`,
          "set-cookie": ["a=1", "b=2"],
          server: "nginx",
          "x-request-id": "abc",
          location: `http://169.254.169.254/?pan=${AMEX}`,
          "retry-after": "3",
          via: "proxy",
          "content-language": ["en", "fr"],
        },
        302,
      ),
      [],
    );
    expect(out.status).toBe(302);
    expect(out.headers).toEqual({
      "content-type": "application/json",
      "request-id": "req_424242******4242",
      "x-request-id": "abc",
      location: "http://169.254.169.254/?pan=378282*****0005",
      "retry-after": "3",
      "content-language": "en, fr",
    });
  });
});
