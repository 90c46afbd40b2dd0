import { createHash, X509Certificate } from "node:crypto";
import { constants } from "node:fs";
import { mkdir, open, readFile, rename } from "node:fs/promises";
import { join } from "node:path";
import { generate as generateSelfSigned } from "selfsigned";
import type { ClientCertAuthConfig } from "../config/config.js";
import { ConfigError } from "../config/config.js";

export interface TlsMaterial {
  readonly key: string;
  readonly cert: string;
  /** True when the vault generated a self-signed certificate for localhost. */
  readonly selfSigned: boolean;
  /** Mutual TLS (docs/mtls.md); absent: no client certificate is requested. */
  readonly clientAuth?: ClientCertAuth;
}

/** The client CA(s) and whether a client certificate is required for the handshake. */
export interface ClientCertAuth {
  readonly mode: "optional" | "required";
  /** PEM of the CA certificate(s) client certificates must chain to. */
  readonly ca: string;
}

/**
 * TLS settings for every listener (PCI DSS 4.2.1; RFC 8446, RFC 9325): TLS 1.2 at least, TLS 1.3
 * negotiated whenever the client offers it, and for TLS 1.2 only forward-secret AEAD suites.
 */
export const TLS_SERVER_OPTIONS = {
  minVersion: "TLSv1.2",
  honorCipherOrder: true,
  ciphers: [
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
    "TLS_AES_128_GCM_SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-CHACHA20-POLY1305",
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
  ].join(":"),
} as const;

async function writePrivate(path: string, contents: string): Promise<void> {
  const temp = `${path}.${process.pid}.tmp`;
  const handle = await open(
    temp,
    constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC,
    0o600,
  );
  try {
    await handle.writeFile(contents);
  } finally {
    await handle.close();
  }
  await rename(temp, path);
}

function stillValid(certPem: string, now: Date): boolean {
  try {
    const cert = new X509Certificate(certPem);
    // Renew a month before expiry.
    return new Date(cert.validTo).getTime() - now.getTime() > 30 * 24 * 3600 * 1000;
  } catch {
    return false;
  }
}

/**
 * The embedded default's certificate: an ECDSA P-256 self-signed certificate for localhost,
 * 127.0.0.1 and ::1, kept in `<dataDir>/tls/` (key mode 0600) and renewed when it nears expiry.
 */
export async function selfSignedLocalhost(dataDir: string, now = new Date()): Promise<TlsMaterial> {
  const dir = join(dataDir, "tls");
  const certPath = join(dir, "localhost.crt");
  const keyPath = join(dir, "localhost.key");
  try {
    const [cert, key] = await Promise.all([readFile(certPath, "utf8"), readFile(keyPath, "utf8")]);
    if (stillValid(cert, now)) return { cert, key, selfSigned: true };
  } catch {
    // Not there yet: generate below.
  }
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const notAfter = new Date(now.getTime() + 365 * 24 * 3600 * 1000);
  const pems = await generateSelfSigned([{ name: "commonName", value: "localhost" }], {
    keyType: "ec",
    curve: "P-256",
    algorithm: "sha256",
    notBeforeDate: now,
    notAfterDate: notAfter,
    extensions: [
      { name: "basicConstraints", cA: false, critical: true },
      { name: "keyUsage", digitalSignature: true, critical: true },
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
  await writePrivate(keyPath, pems.private);
  await writePrivate(certPath, pems.cert);
  return { cert: pems.cert, key: pems.private, selfSigned: true };
}

export async function tlsFromFiles(certFile: string, keyFile: string): Promise<TlsMaterial> {
  const [cert, key] = await Promise.all([readFile(certFile, "utf8"), readFile(keyFile, "utf8")]);
  return { cert, key, selfSigned: false };
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/**
 * Reads and checks the client CA file at start-up (fail fast): it must hold at least one PEM
 * certificate, and every one must be a CA certificate (basicConstraints CA:TRUE), so a leaf
 * certificate pasted in by mistake is refused rather than silently trusted as an issuer.
 */
export async function clientCertAuthFromFile(
  config: ClientCertAuthConfig,
): Promise<ClientCertAuth> {
  let pem: string;
  try {
    pem = await readFile(config.caFile, "utf8");
  } catch {
    throw new ConfigError(`PAYVAULT_TLS_CLIENT_CA: cannot read ${config.caFile}`);
  }
  const blocks = pem.match(PEM_CERTIFICATE) ?? [];
  if (blocks.length === 0) {
    throw new ConfigError(`PAYVAULT_TLS_CLIENT_CA: ${config.caFile} holds no PEM certificate`);
  }
  for (const [index, block] of blocks.entries()) {
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(block);
    } catch {
      throw new ConfigError(
        `PAYVAULT_TLS_CLIENT_CA: certificate ${index + 1} in ${config.caFile} does not parse`,
      );
    }
    if (!cert.ca) {
      throw new ConfigError(
        `PAYVAULT_TLS_CLIENT_CA: certificate ${index + 1} in ${config.caFile} (${cert.subject.replaceAll("\n", ", ")}) is not a CA certificate`,
      );
    }
  }
  return { mode: config.mode, ca: blocks.join("\n") };
}

/**
 * Node's server options for mutual TLS (RFC 8446 §4.3.2 CertificateRequest, §4.4.2): ask every
 * client for a certificate and verify it against the client CA only (not the system roots). In
 * `optional` mode a missing or unverifiable certificate does not end the handshake; the socket is
 * then not `authorized`, and auth.ts never counts such a certificate as presented. In `required`
 * mode the handshake fails without a valid one (PCI DSS 8.3.1: the certificate is a factor).
 */
export function clientAuthServerOptions(clientAuth: ClientCertAuth | undefined) {
  if (clientAuth === undefined) return {};
  return {
    requestCert: true,
    ca: clientAuth.ca,
    rejectUnauthorized: clientAuth.mode === "required",
  };
}

/**
 * The fingerprint an API key is bound to (docs/mtls.md): SHA-256 over the DER of the first
 * certificate in `pem` (the leaf, when the file holds a chain), lowercase hex — the form auth.ts
 * derives from a verified client certificate. A CA certificate is refused: a key is bound to one
 * client's certificate, never to whatever an issuer signs.
 */
export function clientCertFingerprint(pem: string): { sha256: string; subject: string } {
  const block = pem.match(PEM_CERTIFICATE)?.[0];
  if (block === undefined) throw new TypeError("no PEM certificate found");
  const cert = new X509Certificate(block);
  if (cert.ca) throw new TypeError("this is a CA certificate, not a client certificate");
  return {
    sha256: createHash("sha256").update(cert.raw).digest("hex"),
    subject: cert.subject.replaceAll("\n", ", "),
  };
}
