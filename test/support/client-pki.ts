import { execFileSync } from "node:child_process";
import { createHash, X509Certificate } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/**
 * A throwaway client PKI for the mutual TLS suite, made with the `openssl` command line (Debian's
 * openssl package; node:crypto cannot sign certificates): CAs, client certificates they issue,
 * and an expired one. Everything lives under `dir`, which the suite deletes afterwards.
 */
export interface ClientCert {
  readonly cert: string;
  readonly key: string;
  /** SHA-256 of the DER, lowercase hex: what an API key binding stores. */
  readonly sha256: string;
}

export interface ClientCa {
  readonly name: string;
  /** The CA certificate's PEM file (what PAYVAULT_TLS_CLIENT_CA names). */
  readonly certFile: string;
  readonly keyFile: string;
}

const LEAF_EXTENSIONS = [
  "basicConstraints=critical,CA:FALSE",
  "keyUsage=critical,digitalSignature",
  "extendedKeyUsage=clientAuth",
].join("\n");

function openssl(dir: string, args: readonly string[]): void {
  execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "ignore", "pipe"] });
}

/** An independent fingerprint (not the vault's code): SHA-256 over the certificate's DER. */
export function sha256OfCert(pem: string): string {
  return createHash("sha256").update(new X509Certificate(pem).raw).digest("hex");
}

export class ClientPki {
  private serial = 0;

  constructor(private readonly dir: string) {
    writeFileSync(join(dir, "leaf.ext"), `${LEAF_EXTENSIONS}\n`);
  }

  /** A self-signed P-256 CA (basicConstraints CA:TRUE, keyCertSign). */
  ca(name: string): ClientCa {
    const certFile = join(this.dir, `${name}.crt`);
    const keyFile = join(this.dir, `${name}.key`);
    openssl(this.dir, [
      ...["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"],
      ...["-keyout", keyFile, "-out", certFile, "-days", "2", "-subj", `/CN=${name}`],
      ...["-addext", "basicConstraints=critical,CA:TRUE"],
      ...["-addext", "keyUsage=critical,keyCertSign,cRLSign"],
    ]);
    return { name, certFile, keyFile };
  }

  /**
   * A client certificate for `subject` issued by `ca`; `keyOf` reuses another certificate's key
   * (same subject and key, different issuer: only the chain tells them apart).
   */
  client(ca: ClientCa, subject: string, keyOf?: ClientCert): ClientCert {
    const base = join(this.dir, `${subject}-${ca.name}-${++this.serial}`);
    if (keyOf === undefined) {
      openssl(this.dir, [
        ...["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"],
        ...["-keyout", `${base}.key`, "-out", `${base}.csr`, "-subj", `/CN=${subject}`],
      ]);
    } else {
      writeFileSync(`${base}.key`, keyOf.key);
      openssl(this.dir, [
        ...["req", "-new", "-key", `${base}.key`, "-out", `${base}.csr`],
        ...["-subj", `/CN=${subject}`],
      ]);
    }
    openssl(this.dir, [
      ...["x509", "-req", "-in", `${base}.csr`, "-CA", ca.certFile, "-CAkey", ca.keyFile],
      ...["-set_serial", String(this.serial), "-days", "2", "-sha256"],
      ...["-extfile", join(this.dir, "leaf.ext"), "-out", `${base}.crt`],
    ]);
    return this.read(base);
  }

  /** A certificate from `ca` whose validity ended in 2020 (`openssl ca` sets past dates). */
  expired(ca: ClientCa, subject: string): ClientCert {
    const db = join(this.dir, `db-${++this.serial}`);
    mkdirSync(db);
    writeFileSync(join(db, "index.txt"), "");
    writeFileSync(join(db, "serial"), "01\n");
    const config = join(db, "ca.cnf");
    writeFileSync(
      config,
      [
        "[ca]",
        "default_ca = test",
        "[test]",
        `database = ${join(db, "index.txt")}`,
        `new_certs_dir = ${db}`,
        `serial = ${join(db, "serial")}`,
        "default_md = sha256",
        "policy = any",
        "unique_subject = no",
        "[any]",
        "commonName = supplied",
        "",
      ].join("\n"),
    );
    const base = join(db, subject);
    openssl(this.dir, [
      ...["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"],
      ...["-keyout", `${base}.key`, "-out", `${base}.csr`, "-subj", `/CN=${subject}`],
    ]);
    openssl(this.dir, [
      ...["ca", "-batch", "-notext", "-config", config, "-cert", ca.certFile, "-keyfile"],
      ...[ca.keyFile, "-in", `${base}.csr`, "-out", `${base}.crt`],
      ...["-startdate", "20200101000000Z", "-enddate", "20200102000000Z"],
      ...["-extfile", join(this.dir, "leaf.ext")],
    ]);
    return this.read(base);
  }

  private read(base: string): ClientCert {
    const cert = readFileSync(`${base}.crt`, "utf8");
    return { cert, key: readFileSync(`${base}.key`, "utf8"), sha256: sha256OfCert(cert) };
  }
}
