import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  type LocalHttps,
  type ScriptedResolver,
  scriptedResolver,
  startHttps,
  testCertificate,
} from "../outbound/local-https.js";

/** The names the suites register: one reaches the local receiver, one resolves into 10/8. */
export const RECEIVER_HOST = "hooks.shop-events.example.com";
export const INTERNAL_HOST = "internal.shop-events.example.com";

/**
 * A merchant's webhook endpoint: a real HTTPS listener on 127.0.0.1 with a certificate for
 * RECEIVER_HOST (the vault trusts it through PAYVAULT_OUTBOUND_CA_FILE), answering each path
 * with the status set for it (200 unless told otherwise).
 */
export interface MerchantReceiver {
  readonly https: LocalHttps;
  readonly resolver: ScriptedResolver;
  /** The vault settings that let it reach the receiver (loopback switch, CA file). */
  readonly env: Readonly<Record<string, string>>;
  /** Status per request path. */
  readonly statuses: Map<string, number>;
  url(path: string, host?: string): string;
  /** What reached `path`, in order. */
  received(path: string): LocalHttps["requests"];
  close(): Promise<void>;
}

export async function startMerchantReceiver(): Promise<MerchantReceiver> {
  const certificate = await testCertificate([RECEIVER_HOST, INTERNAL_HOST]);
  const dir = await mkdtemp(join(tmpdir(), "payvault-receiver-"));
  const caFile = join(dir, "ca.pem");
  await writeFile(caFile, certificate.cert);
  const statuses = new Map<string, number>();
  const https = await startHttps(certificate, (req, res) => {
    res.writeHead(statuses.get(req.url ?? "") ?? 200, { "content-type": "text/plain" });
    res.end("ok");
  });
  const resolver = scriptedResolver({
    [RECEIVER_HOST]: [["127.0.0.1"]],
    [INTERNAL_HOST]: [["10.0.0.1"]],
  });
  return {
    https,
    resolver,
    env: { PAYVAULT_OUTBOUND_ALLOW_LOOPBACK: "true", PAYVAULT_OUTBOUND_CA_FILE: caFile },
    statuses,
    url: (path, host = RECEIVER_HOST) => `https://${host}:${https.port}${path}`,
    received: (path) => https.requests.filter((request) => request.url === path),
    async close() {
      await https.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
