import { execFileSync } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeProcessorCertificate } from "../../../src/bench/processor-certificate.js";
import { runWrk } from "../../../src/bench/wrk-runner.js";
import type { ScriptOptions, Workload } from "../../../src/bench/wrk-script.js";
import { wrkScript } from "../../../src/bench/wrk-script.js";

function options(workload: Workload, countMatch?: string): ScriptOptions {
  return {
    workload,
    authorization: undefined,
    cardStart: 0,
    expMonth: 12,
    expYear: 2031,
    ratePerThread: 0,
    threads: 1,
    countMatch,
  };
}

const lines = (lineHeader?: string): Workload => ({
  kind: "lines",
  method: "POST",
  path: "/v1/webhooks/stripe/whe_1",
  linesFile: "/tmp/lines.txt",
  ...(lineHeader === undefined ? {} : { lineHeader }),
});

describe("wrk script: the lines workload's header and the answer count", () => {
  it("puts the line header and the counted text in the script's config", () => {
    const script = wrkScript(options(lines("Stripe-Signature"), '"duplicate":false'));
    expect(script).toContain('line_header = "Stripe-Signature",');
    expect(script).toContain('count_match = "\\"duplicate\\":false",');
    const plain = wrkScript(options(lines()));
    expect(plain).toContain("line_header = nil,");
    expect(plain).toContain("count_match = nil,");
  });

  it("refuses a header name that is not an HTTP token, and non-printable text", () => {
    expect(() => wrkScript(options(lines("Stripe Signature")))).toThrow(/header name/);
    expect(() => wrkScript(options(lines("X-A\r\nX-B")))).toThrow(/header name/);
    expect(() => wrkScript(options(lines(), "a\nb"))).toThrow(/printable ASCII/);
  });
});

function wrkInstalled(): boolean {
  try {
    execFileSync("wrk", ["-v"], { stdio: "ignore" });
    return true;
  } catch (err) {
    // `wrk -v` prints its version and exits 1; only a missing binary is ENOENT.
    return (err as NodeJS.ErrnoException).code !== "ENOENT";
  }
}

/** wrk itself runs the Lua: the one way to know the script does what the runner relies on. */
describe.skipIf(!wrkInstalled())("wrk running a lines workload with a header per line", () => {
  const received: { method: string; signature: string | undefined; body: string }[] = [];
  let dir = "";
  let url = "";
  let close: () => Promise<void> = async () => undefined;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "wrk-lines-"));
    const cert = await makeProcessorCertificate(dir);
    const server = createServer(
      { cert: await readFile(cert.certFile), key: await readFile(cert.keyFile) },
      (req, res) => {
        const chunks: Buffer[] = [];
        req.on("data", (c: Buffer) => chunks.push(c));
        req.on("end", () => {
          const body = Buffer.concat(chunks).toString("utf8");
          const signature = req.headers["stripe-signature"];
          received.push({ method: req.method ?? "", signature: signature as string, body });
          // Even n: queued; odd n: a replay, acknowledged as a duplicate (a 200 too).
          const n = req.method === "POST" ? (JSON.parse(body) as { n: number }).n : 0;
          res.writeHead(200, { "content-type": "application/json" });
          res.end(JSON.stringify({ received: true, duplicate: n % 2 === 1 }));
        });
      },
    );
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
    close = () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
  });

  afterAll(async () => {
    await close();
    await rm(dir, { recursive: true, force: true });
  });

  it("sends each line once, in order, its header value as the header and the rest as the body", async () => {
    const file = join(dir, "lines.txt");
    const made = Array.from({ length: 40 }, (_, n) => ({
      signature: `t=1790000000,v1=${n.toString(16).padStart(64, "0")}`,
      body: JSON.stringify({ n, text: "a\\tb = c, d" }),
    }));
    await writeFile(file, `${made.map((l) => `${l.signature}\t${l.body}`).join("\n")}\n`);
    const { wrk } = await runWrk({
      url,
      connections: 1,
      threads: 1,
      seconds: 1,
      serverPid: process.pid,
      workDir: dir,
      script: {
        ...options({
          kind: "lines",
          method: "POST",
          path: "/intake",
          linesFile: file,
          lineHeader: "Stripe-Signature",
        }),
        countMatch: '"duplicate":false',
      },
    });
    const posts = received
      .filter((r) => r.method === "POST")
      .map(({ signature, body }) => ({ signature, body }));
    // All 40, the first included: wrk's own check call of request() does not use a line up.
    expect(posts).toEqual(made);
    expect(wrk.lines_sent).toBe(40);
    expect(wrk.lines_missing).toBeGreaterThanOrEqual(1);
    // One connection: every answer was read before the thread ran out and stopped.
    expect(wrk.counted).toBe(20);
  });
});
