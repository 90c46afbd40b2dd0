import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { generate } from "selfsigned";

export interface ProcessorCertificate {
  /** The certificate (PEM): the processor serves it and the vault trusts it as its only CA. */
  readonly certFile: string;
  readonly keyFile: string;
}

/**
 * A throw-away certificate for the bench's local processor, for `localhost`, 127.0.0.1 and ::1.
 * It is its own CA (basicConstraints CA:TRUE, keyCertSign), so the vault can take it as its one
 * trust anchor (PAYVAULT_OUTBOUND_CA_FILE) and verify the processor as it would a real one
 * (PCI DSS 4.2.1: certificates of the other end are verified). Both files are mode 0600 in the
 * run's private work dir and deleted with it.
 */
export async function makeProcessorCertificate(dir: string): Promise<ProcessorCertificate> {
  const now = Date.now();
  const pems = await generate([{ name: "commonName", value: "localhost" }], {
    keyType: "ec",
    curve: "P-256",
    algorithm: "sha256",
    notBeforeDate: new Date(now - 60_000),
    notAfterDate: new Date(now + 7 * 86_400_000),
    extensions: [
      { name: "basicConstraints", cA: true, critical: true },
      { name: "keyUsage", digitalSignature: true, keyCertSign: true, critical: true },
      { name: "extKeyUsage", serverAuth: true },
      {
        name: "subjectAltName",
        altNames: [
          { type: 2, value: "localhost" },
          { type: 7, ip: "127.0.0.1" },
          { type: 7, ip: "::1" },
        ],
      },
    ],
  });
  const certFile = join(dir, "processor.crt");
  const keyFile = join(dir, "processor.key");
  await writeFile(certFile, pems.cert, { mode: 0o600 });
  await writeFile(keyFile, pems.private, { mode: 0o600 });
  return { certFile, keyFile };
}
