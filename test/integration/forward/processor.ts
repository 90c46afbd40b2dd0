import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import {
  type LocalHttps,
  startHttps,
  type TestCertificate,
  testCertificate,
} from "../outbound/local-https.js";

/**
 * A local HTTPS "processor" for the forward-proxy suites: a real TLS listener with a throwaway
 * self-signed certificate (also the trust anchor the vault is given through
 * PAYVAULT_OUTBOUND_CA_FILE), recording every request that reached it.
 *
 * - `/v1/charges…`: 201 JSON echoing the card number it received, plus headers some allowlisted
 *   and some not;
 * - `/v1/redirect`: 302 to the cloud metadata address;
 * - `/v1/hang`: never answers; `/v1/big`: a 4 KiB body.
 */
export interface TestProcessor {
  readonly https: LocalHttps;
  readonly cert: TestCertificate;
  readonly caFile: string;
}

export async function startProcessor(dir: string): Promise<TestProcessor> {
  const cert = await testCertificate(["processor.test", "localhost"]);
  const caFile = join(dir, "processor-ca.pem");
  await writeFile(caFile, cert.cert);
  const https = await startHttps(cert, (req, res, body) => {
    const path = req.url?.split("?")[0] ?? "";
    if (path === "/v1/redirect") {
      res.writeHead(302, { location: "http://169.254.169.254/latest/meta-data/" }).end();
      return;
    }
    if (path === "/v1/hang") return;
    if (path === "/v1/big") {
      res.writeHead(200, { "content-type": "text/plain" }).end("x".repeat(4096));
      return;
    }
    const text = body.toString("utf8");
    const number =
      /"number":"(\d+)"/.exec(text)?.[1] ?? new URLSearchParams(text).get("card[number]") ?? "";
    res
      .writeHead(201, {
        "content-type": "application/json",
        "request-id": "req_processor_1",
        "set-cookie": "session=secret",
        server: "processor/1.0",
      })
      .end(JSON.stringify({ id: "ch_1", status: "succeeded", echoed_number: number }));
  });
  return { https, cert, caFile };
}
