import { createCipheriv, createDecipheriv, randomBytes, randomUUID } from "node:crypto";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";

/**
 * A protocol-level stand-in for AWS KMS, for tests only. AWS is unreachable from the test
 * environment, so the `aws-kms` adapter runs the real @aws-sdk/client-kms against this: a
 * node:http server on 127.0.0.1 speaking the KMS JSON 1.1 protocol (POST /, `X-Amz-Target:
 * TrentService.<Action>`, `Content-Type: application/x-amz-json-1.1`, blobs in base64, epoch
 * second timestamps, errors as HTTP 400/500 with `{"__type": …, "message": …}`, which the SDK
 * reads before the `x-amzn-errortype` header).
 *
 * It is NOT KMS, and a pass here says nothing about IAM or key policies. It requires a SigV4
 * Authorization header with a `…/<region>/kms/aws4_request` scope but does not verify the
 * signature; it has no grants, aliases, multi-Region keys or quotas; its ciphertext blob is its
 * own format. What it does model honestly, because the adapter's guarantees depend on it:
 * - key material per key is a list of AES-256 versions; Encrypt uses the newest completed one,
 *   Decrypt the one the blob names, and rotation adds one (RotateKeyOnDemand, ListKeyRotations);
 * - a blob is `format || key id || material version || IV || AES-256-GCM ciphertext || tag`,
 *   the header and the canonicalized EncryptionContext are the GCM AAD, so a wrong context or a
 *   flipped bit fails with InvalidCiphertextException, as in KMS;
 * - Decrypt/ReEncrypt with a KeyId other than the blob's key fails with IncorrectKeyException;
 *   a disabled key fails with DisabledException, an unknown one with NotFoundException.
 */

const REGION = "us-east-1";
const ACCOUNT = "111122223333";
const BLOB_FORMAT = 0x01;
const KEY_ID_BYTES = 36; // a UUID in ASCII
const HEADER_BYTES = 1 + KEY_ID_BYTES + 4;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const SIGV4 =
  /^AWS4-HMAC-SHA256 Credential=([A-Za-z0-9]+)\/\d{8}\/([a-z0-9-]+)\/kms\/aws4_request, ?SignedHeaders=[a-z0-9;-]+, ?Signature=[0-9a-f]{64}$/;

type Json = Record<string, unknown>;

interface KeyMaterial {
  readonly id: string;
  readonly key: Buffer;
  /** null for the key's first material; set for a rotation once it completes. */
  readonly rotatedAt: Date | null;
  readonly completesAt: number;
}

interface StandinKey {
  readonly keyId: string;
  readonly arn: string;
  readonly createdAt: Date;
  readonly keyUsage: string;
  readonly keySpec: string;
  enabled: boolean;
  readonly materials: KeyMaterial[];
}

export interface RecordedCall {
  readonly action: string;
  readonly accessKeyId: string | null;
  /** The parsed request body (includes plaintext DEKs: this is a test double). */
  readonly body: Json;
}

export interface KmsStandinOptions {
  /** RotateKeyOnDemand completes this long after the call, as in KMS (asynchronously). */
  readonly rotationDelayMs?: number;
}

export interface KmsStandin {
  readonly endpoint: string;
  /** Creates a symmetric ENCRYPT_DECRYPT key (or the given usage/spec) and returns its KeyId. */
  createKey(options?: { keyUsage?: string; keySpec?: string }): Promise<string>;
  /** What DisableKey / EnableKey would do. */
  setKeyEnabled(keyId: string, enabled: boolean): void;
  stop(): Promise<void>;
  /** Listens again on the same port, with the same keys. */
  restart(): Promise<void>;
  /** The X-Amz-Target actions seen, in order, including refused ones. */
  readonly requests: string[];
  readonly calls: RecordedCall[];
  /** Requests that were not KMS calls at all (e.g. an instance metadata lookup), as "METHOD path". */
  readonly strayRequests: string[];
  /** Answers the next `count` KMS calls with this error type instead of serving them. */
  failNext(count: number, errorType: string, status?: number): void;
  /** While on, requests are accepted and never answered. */
  stall(on: boolean): void;
}

class KmsError extends Error {
  constructor(
    readonly type: string,
    message: string,
    readonly status = 400,
  ) {
    super(message);
  }
}

const epochSeconds = (date: Date): number => date.getTime() / 1000;

function requireString(body: Json, field: string): string {
  const value = body[field];
  if (typeof value !== "string" || value.length === 0) {
    throw new KmsError(
      "ValidationException",
      `1 validation error detected: '${field}' is required`,
    );
  }
  return value;
}

function optionalString(body: Json, field: string): string | undefined {
  return body[field] === undefined ? undefined : requireString(body, field);
}

function requireBlob(body: Json, field: string, max: number): Buffer {
  const value = body[field];
  if (typeof value !== "string" || !/^[A-Za-z0-9+/]*={0,2}$/.test(value)) {
    throw new KmsError("SerializationException", `'${field}' is not a base64 blob`);
  }
  const bytes = Buffer.from(value, "base64");
  if (bytes.length < 1 || bytes.length > max) {
    throw new KmsError(
      "ValidationException",
      `1 validation error detected: '${field}' must have length between 1 and ${max}`,
    );
  }
  return bytes;
}

/** EncryptionContext → AAD bytes: entries sorted by key, so the map's order does not matter. */
function canonicalContext(body: Json, field: string): Buffer {
  const value = body[field] ?? {};
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new KmsError("SerializationException", `'${field}' must be a map of strings`);
  }
  const entries = Object.entries(value);
  for (const [, v] of entries) {
    if (typeof v !== "string")
      throw new KmsError("SerializationException", `'${field}' values must be strings`);
  }
  entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return Buffer.from(JSON.stringify(entries), "utf8");
}

function algorithmIsSymmetric(body: Json, field: string): void {
  const value = body[field];
  if (value !== undefined && value !== "SYMMETRIC_DEFAULT") {
    throw new KmsError(
      "InvalidKeyUsageException",
      `${field} ${String(value)} is not valid for this key`,
    );
  }
}

class KeyStore {
  private readonly keys = new Map<string, StandinKey>();

  constructor(private readonly rotationDelayMs: number) {}

  create(keyUsage = "ENCRYPT_DECRYPT", keySpec = "SYMMETRIC_DEFAULT"): StandinKey {
    const keyId = randomUUID();
    const now = new Date();
    const key: StandinKey = {
      keyId,
      arn: `arn:aws:kms:${REGION}:${ACCOUNT}:key/${keyId}`,
      createdAt: now,
      keyUsage,
      keySpec,
      enabled: true,
      materials: [
        {
          id: randomBytes(32).toString("hex"),
          key: randomBytes(32),
          rotatedAt: null,
          completesAt: 0,
        },
      ],
    };
    this.keys.set(keyId, key);
    return key;
  }

  /** Key id or key ARN; this stand-in has no aliases. */
  find(keyIdOrArn: string): StandinKey {
    const prefix = `arn:aws:kms:${REGION}:${ACCOUNT}:key/`;
    const keyId = keyIdOrArn.startsWith(prefix) ? keyIdOrArn.slice(prefix.length) : keyIdOrArn;
    const key = this.keys.get(keyId);
    if (key === undefined)
      throw new KmsError("NotFoundException", `Key '${keyIdOrArn}' does not exist`);
    return key;
  }

  usable(keyIdOrArn: string): StandinKey {
    const key = this.find(keyIdOrArn);
    if (!key.enabled) throw new KmsError("DisabledException", `${key.arn} is disabled.`);
    if (key.keyUsage !== "ENCRYPT_DECRYPT" || key.keySpec !== "SYMMETRIC_DEFAULT") {
      throw new KmsError(
        "InvalidKeyUsageException",
        `${key.arn} is not a symmetric encryption key`,
      );
    }
    return key;
  }

  completed(key: StandinKey): KeyMaterial[] {
    const now = Date.now();
    return key.materials.filter((m) => m.completesAt <= now);
  }

  rotate(key: StandinKey): void {
    const completesAt = Date.now() + this.rotationDelayMs;
    if (key.materials.some((m) => m.completesAt > Date.now())) {
      throw new KmsError("ConflictException", `${key.arn} has a rotation in progress`);
    }
    key.materials.push({
      id: randomBytes(32).toString("hex"),
      key: randomBytes(32),
      rotatedAt: new Date(completesAt),
      completesAt,
    });
  }

  encrypt(key: StandinKey, plaintext: Buffer, context: Buffer): Buffer {
    const materials = this.completed(key);
    const version = materials.length; // 1-based index of the newest completed material
    const material = materials[version - 1]!;
    const header = Buffer.alloc(HEADER_BYTES);
    header[0] = BLOB_FORMAT;
    header.write(key.keyId, 1, "ascii");
    header.writeUInt32BE(version, 1 + KEY_ID_BYTES);
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv("aes-256-gcm", material.key, iv);
    cipher.setAAD(Buffer.concat([header, context]));
    const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
    return Buffer.concat([header, iv, body, cipher.getAuthTag()]);
  }

  /** The blob's key (after checking any KeyId pin) and its plaintext. */
  decrypt(
    blob: Buffer,
    pinnedKeyId: string | undefined,
    context: Buffer,
  ): { key: StandinKey; plaintext: Buffer } {
    const invalid = () => new KmsError("InvalidCiphertextException", "");
    if (blob.length < HEADER_BYTES + IV_BYTES + TAG_BYTES || blob[0] !== BLOB_FORMAT)
      throw invalid();
    const blobKeyId = blob.toString("ascii", 1, 1 + KEY_ID_BYTES);
    const pinned = pinnedKeyId === undefined ? undefined : this.find(pinnedKeyId);
    const key = this.keys.get(blobKeyId);
    if (key === undefined) throw invalid();
    if (pinned !== undefined && pinned.keyId !== key.keyId) {
      throw new KmsError(
        "IncorrectKeyException",
        "The key ID in the request does not identify a KMS key that can perform this operation.",
      );
    }
    this.usable(key.keyId);
    const material = key.materials[blob.readUInt32BE(1 + KEY_ID_BYTES) - 1];
    if (material === undefined || material.completesAt > Date.now()) throw invalid();
    const iv = blob.subarray(HEADER_BYTES, HEADER_BYTES + IV_BYTES);
    try {
      const decipher = createDecipheriv("aes-256-gcm", material.key, iv);
      decipher.setAAD(Buffer.concat([blob.subarray(0, HEADER_BYTES), context]));
      decipher.setAuthTag(blob.subarray(blob.length - TAG_BYTES));
      const body = blob.subarray(HEADER_BYTES + IV_BYTES, blob.length - TAG_BYTES);
      return { key, plaintext: Buffer.concat([decipher.update(body), decipher.final()]) };
    } catch {
      throw invalid();
    }
  }
}

function keyMetadata(store: KeyStore, key: StandinKey): Json {
  const current = store.completed(key).at(-1)!;
  return {
    AWSAccountId: ACCOUNT,
    KeyId: key.keyId,
    Arn: key.arn,
    CreationDate: epochSeconds(key.createdAt),
    Enabled: key.enabled,
    Description: "",
    KeyUsage: key.keyUsage,
    KeyState: key.enabled ? "Enabled" : "Disabled",
    Origin: "AWS_KMS",
    KeyManager: "CUSTOMER",
    CustomerMasterKeySpec: key.keySpec,
    KeySpec: key.keySpec,
    EncryptionAlgorithms: key.keyUsage === "ENCRYPT_DECRYPT" ? ["SYMMETRIC_DEFAULT"] : [],
    MultiRegion: false,
    CurrentKeyMaterialId: current.id,
  };
}

/** The KMS actions the stand-in serves; each takes the parsed body and returns the response. */
function actions(store: KeyStore): Record<string, (body: Json) => Json> {
  return {
    CreateKey: (body) => {
      const key = store.create(optionalString(body, "KeyUsage"), optionalString(body, "KeySpec"));
      return { KeyMetadata: keyMetadata(store, key) };
    },
    DescribeKey: (body) => ({
      KeyMetadata: keyMetadata(store, store.find(requireString(body, "KeyId"))),
    }),
    Encrypt: (body) => {
      const key = store.usable(requireString(body, "KeyId"));
      algorithmIsSymmetric(body, "EncryptionAlgorithm");
      const plaintext = requireBlob(body, "Plaintext", 4096);
      const blob = store.encrypt(key, plaintext, canonicalContext(body, "EncryptionContext"));
      return {
        CiphertextBlob: blob.toString("base64"),
        KeyId: key.arn,
        EncryptionAlgorithm: "SYMMETRIC_DEFAULT",
      };
    },
    Decrypt: (body) => {
      algorithmIsSymmetric(body, "EncryptionAlgorithm");
      const blob = requireBlob(body, "CiphertextBlob", 6144);
      const context = canonicalContext(body, "EncryptionContext");
      const { key, plaintext } = store.decrypt(blob, optionalString(body, "KeyId"), context);
      return {
        KeyId: key.arn,
        Plaintext: plaintext.toString("base64"),
        EncryptionAlgorithm: "SYMMETRIC_DEFAULT",
      };
    },
    ReEncrypt: (body) => {
      algorithmIsSymmetric(body, "SourceEncryptionAlgorithm");
      algorithmIsSymmetric(body, "DestinationEncryptionAlgorithm");
      const blob = requireBlob(body, "CiphertextBlob", 6144);
      const destination = store.usable(requireString(body, "DestinationKeyId"));
      const source = store.decrypt(
        blob,
        optionalString(body, "SourceKeyId"),
        canonicalContext(body, "SourceEncryptionContext"),
      );
      const out = store.encrypt(
        destination,
        source.plaintext,
        canonicalContext(body, "DestinationEncryptionContext"),
      );
      source.plaintext.fill(0);
      return {
        CiphertextBlob: out.toString("base64"),
        SourceKeyId: source.key.arn,
        KeyId: destination.arn,
        SourceEncryptionAlgorithm: "SYMMETRIC_DEFAULT",
        DestinationEncryptionAlgorithm: "SYMMETRIC_DEFAULT",
      };
    },
    RotateKeyOnDemand: (body) => {
      const key = store.usable(requireString(body, "KeyId"));
      store.rotate(key);
      return { KeyId: key.arn };
    },
    ListKeyRotations: (body) => {
      const key = store.find(requireString(body, "KeyId"));
      // Completed rotations only (IncludeKeyMaterial ROTATIONS_ONLY, the default); one page.
      const rotations = store
        .completed(key)
        .filter((m) => m.rotatedAt !== null)
        .map((m) => ({
          KeyId: key.arn,
          KeyMaterialId: m.id,
          KeyMaterialState: "NON_CURRENT",
          RotationDate: epochSeconds(m.rotatedAt!),
          RotationType: "ON_DEMAND",
        }));
      const last = rotations.at(-1);
      if (last !== undefined) last.KeyMaterialState = "CURRENT";
      return { Rotations: rotations, Truncated: false };
    },
  };
}

async function readBody(request: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function reply(response: ServerResponse, status: number, body: Json): void {
  response.writeHead(status, {
    "content-type": "application/x-amz-json-1.1",
    "x-amzn-requestid": randomUUID(),
  });
  response.end(JSON.stringify(body));
}

export async function startKmsStandin(options: KmsStandinOptions = {}): Promise<KmsStandin> {
  const store = new KeyStore(options.rotationDelayMs ?? 0);
  const handlers = actions(store);
  const requests: string[] = [];
  const calls: RecordedCall[] = [];
  const strayRequests: string[] = [];
  const faults: { type: string; status: number }[] = [];
  let stalled = false;

  const handle = async (request: IncomingMessage, response: ServerResponse): Promise<void> => {
    const raw = await readBody(request);
    const target = request.headers["x-amz-target"];
    if (request.method !== "POST" || request.url !== "/" || typeof target !== "string") {
      strayRequests.push(`${request.method} ${request.url}`);
      reply(response, 404, { __type: "UnknownOperationException", message: "not a KMS request" });
      return;
    }
    const action = target.startsWith("TrentService.")
      ? target.slice("TrentService.".length)
      : target;
    requests.push(action);
    if (stalled) return; // never answered; stop() destroys the socket
    const fault = faults.shift();
    if (fault !== undefined) throw new KmsError(fault.type, "injected fault", fault.status);
    const handler = handlers[action];
    if (!target.startsWith("TrentService.") || handler === undefined) {
      throw new KmsError("UnknownOperationException", `unknown operation ${target}`);
    }
    if (request.headers["content-type"] !== "application/x-amz-json-1.1") {
      throw new KmsError(
        "SerializationException",
        "Content-Type must be application/x-amz-json-1.1",
      );
    }
    const authorization = request.headers.authorization;
    if (authorization === undefined) {
      throw new KmsError("MissingAuthenticationTokenException", "Missing Authentication Token");
    }
    const scope = SIGV4.exec(authorization);
    if (scope === null || request.headers["x-amz-date"] === undefined) {
      throw new KmsError(
        "IncompleteSignatureException",
        "Authorization header is not a SigV4 header for kms",
      );
    }
    if (scope[2] !== REGION) {
      throw new KmsError("InvalidSignatureException", `Credential should be scoped to ${REGION}`);
    }
    let body: Json;
    try {
      body = JSON.parse(raw.toString("utf8")) as Json;
    } catch {
      throw new KmsError("SerializationException", "body is not JSON");
    }
    calls.push({ action, accessKeyId: scope[1] ?? null, body });
    reply(response, 200, handler(body));
  };

  const server: Server = createServer((request, response) => {
    handle(request, response).catch((err: unknown) => {
      if (response.headersSent) return;
      if (err instanceof KmsError) {
        reply(response, err.status, { __type: err.type, message: err.message });
      } else {
        reply(response, 500, { __type: "KMSInternalException", message: String(err) });
      }
    });
  });

  const listen = (port: number) =>
    new Promise<number>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, "127.0.0.1", () => {
        server.off("error", reject);
        resolve((server.address() as AddressInfo).port);
      });
    });
  const port = await listen(0);

  return {
    endpoint: `http://127.0.0.1:${port}`,
    createKey: async (keyOptions = {}) =>
      store.create(keyOptions.keyUsage, keyOptions.keySpec).keyId,
    setKeyEnabled: (keyId, enabled) => {
      store.find(keyId).enabled = enabled;
    },
    stop: () =>
      new Promise<void>((resolve, reject) => {
        if (!server.listening) return resolve();
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
    restart: async () => {
      await listen(port);
    },
    requests,
    calls,
    strayRequests,
    failNext: (count, errorType, status = 400) => {
      for (let i = 0; i < count; i++) faults.push({ type: errorType, status });
    },
    stall: (on) => {
      stalled = on;
    },
  };
}
