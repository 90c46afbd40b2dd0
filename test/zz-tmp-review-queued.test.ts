import { it, expect } from "vitest";
import { compileAllowlist } from "/work/main/src/outbound/destination.js";
import { createSafeFetch } from "/work/main/src/outbound/safe-fetch.js";
import { scriptedResolver, startHttps, testCertificate } from "/work/main/test/integration/outbound/local-https.js";

it("queued request on a freed pooled socket", async () => {
  const cert = await testCertificate(["processor.test"]);
  const srv = await startHttps(cert, ((_q: any, res: any) => setTimeout(() => res.writeHead(200).end("ok"), 200)) as never, "127.0.0.1");
  const resolver = scriptedResolver({ "processor.test": [["127.0.0.1"]] });
  const fetch = createSafeFetch({ resolver: resolver.resolve, ca: cert.cert, allowLoopback: true, connectTimeoutMs: 1500,
    keepAlive: { maxAgents: 4, maxSocketsPerAgent: 1, maxFreeSocketsPerAgent: 1, idleTimeoutMs: 4000 } });
  const allow = compileAllowlist([{ host: "processor.test", pathPrefix: "/", port: srv.port }]);
  let lateCalls = 0;
  const req = () => fetch({ method: "POST", url: `https://processor.test:${srv.port}/pay`, headers: {"content-type": "-"},
     lateParts: async () => { lateCalls++; return { headers: {"content-type":"text/plain"}, body: "x" }; } }, allow);
  const t0 = Date.now();
  const results = await Promise.all([req(), req()]);
  console.log(JSON.stringify(results.map(r => r.ok ? r.response.status : r.failure)), "lateCalls", lateCalls, "ms", Date.now()-t0);
  await srv.close();
});
