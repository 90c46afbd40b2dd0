import type { KeyMetadata } from "@aws-sdk/client-kms";
import {
  DecryptCommand,
  DescribeKeyCommand,
  EncryptCommand,
  IncorrectKeyException,
  InvalidCiphertextException,
  KMSClient,
  ListKeyRotationsCommand,
  NotFoundException,
  ReEncryptCommand,
  RotateKeyOnDemandCommand,
} from "@aws-sdk/client-kms";
import { DecryptionError } from "../crypto/decryption-error.js";
import type {
  Environment,
  KekDescription,
  KeyContext,
  KeyManager,
  WrappedKey,
} from "./key-manager.js";
import { ENVIRONMENTS, KeyServiceUnavailableError } from "./key-manager.js";

export interface AwsKmsKeyManagerOptions {
  /**
   * One KMS key per environment: key id, key ARN, alias name or alias ARN. Never the same key:
   * live and test DEKs are never wrapped under one KEK.
   */
  readonly keyIds: { readonly live: string; readonly test: string };
  readonly region: string;
  /** Overrides the regional endpoint (a VPC endpoint, or a local stand-in in tests). */
  readonly endpoint?: string;
  /** Static credentials; without them the SDK's default chain (env, profile, instance role). */
  readonly credentials?: {
    readonly accessKeyId: string;
    readonly secretAccessKey: string;
    readonly sessionToken?: string;
  };
  /** Per attempt: connecting, and waiting for the response. Default 2000 ms. */
  readonly requestTimeoutMs?: number;
  /** Attempts per call, the first included. Default 2. */
  readonly maxAttempts?: number;
}

/** The KMS key given for an environment cannot serve as its KEK; raised by open() only. */
export class AwsKmsConfigError extends Error {
  override readonly name = "AwsKmsConfigError";
}

const ALGORITHM = "AWS KMS SYMMETRIC_DEFAULT (AES-256-GCM)";
const DEFAULT_REQUEST_TIMEOUT_MS = 2_000;
const DEFAULT_MAX_ATTEMPTS = 2;
/** RotateKeyOnDemand only starts a rotation; how long rotateKek waits for it to complete. */
const ROTATION_WAIT_MS = 60_000;
const ROTATION_POLL_MS = 250;
/** Decrypt and ReEncrypt take CiphertextBlob of 1..6144 bytes; anything else cannot be ours. */
const MAX_CIPHERTEXT_BYTES = 6144;

interface KmsKek {
  readonly arn: string;
  readonly createdAt: Date | null;
  /** Completion dates of the completed rotations, oldest first. */
  readonly rotations: readonly Date[];
}

const currentVersionOf = (kek: KmsKek): number => kek.rotations.length + 1;

/**
 * The `aws-kms` KeyManager: each environment's KEK is a customer managed, symmetric AWS KMS key.
 * PCI DSS v4.0.1 3.6.1.2: DEKs are stored only wrapped under a KEK at least as strong (AES-256),
 * and the KEK only inside a secure cryptographic device (KMS's HSMs), apart from the DEKs.
 * 3.6.1.3: KMS key material cannot be exported, so no custodian, and not this host, ever holds a
 * cleartext KEK. DEKs are wrapped with the KMS action Encrypt, unwrapped with Decrypt and moved
 * to new key material with ReEncrypt, which never returns the DEK to this host.
 *
 * Version scheme: KMS picks the key material itself (the newest for Encrypt, the one recorded in
 * the blob for Decrypt) and has no version numbers, so the adapter numbers them: version =
 * 1 + the number of completed rotations in ListKeyRotations (automatic and on-demand). Version 1
 * is the key's original material, dated by DescribeKey's CreationDate; version n+1 is the n-th
 * rotation, dated by its RotationDate. The number is learned at open() and after rotateKek(), and
 * bound into every wrap's EncryptionContext, so it is a label the wrap cannot be moved off, not a
 * selector: a rotation made elsewhere (another replica, KMS's automatic rotation) is picked up at
 * the next open, and until then new wraps carry the older label while KMS already encrypts under
 * newer material. That errs safe: a re-wrap pass moves them once more.
 *
 * Failures: a wrap that does not verify (InvalidCiphertextException, IncorrectKeyException, a
 * different context) is the one DecryptionError; anything else (network, timeouts, throttling,
 * KMSInternalException, DependencyTimeoutException, KeyUnavailableException, DisabledException,
 * access denied) is KeyServiceUnavailableError, whose cause is for the operator's log only.
 */
export class AwsKmsKeyManager implements KeyManager {
  readonly kind = "aws-kms" as const;

  private constructor(
    private readonly client: KMSClient,
    private readonly keks: Record<Environment, KmsKek>,
    /** Cuts off a whole call, retries included, should the per-attempt timeouts not fire. */
    private readonly deadlineMs: number,
  ) {}

  static async open(options: AwsKmsKeyManagerOptions): Promise<AwsKmsKeyManager> {
    const { keyIds, region } = options;
    if (region.length === 0) throw new AwsKmsConfigError("aws-kms: region is required");
    if (keyIds.live === keyIds.test) {
      throw new AwsKmsConfigError("aws-kms: live and test must use different KMS keys");
    }
    const requestTimeoutMs = positiveInteger(
      options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS,
      "requestTimeoutMs",
    );
    const maxAttempts = positiveInteger(options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS, "maxAttempts");
    const client = new KMSClient({
      region,
      ...(options.endpoint === undefined ? {} : { endpoint: options.endpoint }),
      ...(options.credentials === undefined ? {} : { credentials: { ...options.credentials } }),
      maxAttempts,
      retryMode: "standard",
      // The options form of the SDK's NodeHttpHandler. requestTimeout alone only logs a warning
      // in this SDK; throwOnRequestTimeout makes it fail the attempt, so a stalled KMS becomes
      // KeyServiceUnavailableError in bounded time instead of a hung request.
      requestHandler: {
        connectionTimeout: requestTimeoutMs,
        requestTimeout: requestTimeoutMs,
        socketTimeout: requestTimeoutMs,
        throwOnRequestTimeout: true,
      },
    });
    const deadlineMs = maxAttempts * (requestTimeoutMs + 1_000);
    try {
      const loading = {
        live: loadKek(client, "live", keyIds.live, deadlineMs),
        test: loadKek(client, "test", keyIds.test, deadlineMs),
      };
      // Settle both first: no request of a failed open() may outlive it (a retry, later).
      await Promise.allSettled([loading.live, loading.test]);
      const live = await loading.live;
      const test = await loading.test;
      // Two different names (an alias and a key id) can still mean one key.
      if (live.arn === test.arn) {
        throw new AwsKmsConfigError(
          `aws-kms: live and test name the same KMS key (${live.arn}); each environment needs its own`,
        );
      }
      return new AwsKmsKeyManager(client, { live, test }, deadlineMs);
    } catch (err) {
      client.destroy();
      throw err;
    }
  }

  async wrapKey(key: Uint8Array, context: KeyContext): Promise<WrappedKey> {
    const kek = this.keks[context.environment];
    const kekVersion = currentVersionOf(kek);
    const out = await this.call("Encrypt", false, (abortSignal) =>
      this.client.send(
        new EncryptCommand({
          KeyId: kek.arn,
          Plaintext: key,
          EncryptionContext: encryptionContext(context, kekVersion),
          EncryptionAlgorithm: "SYMMETRIC_DEFAULT",
        }),
        { abortSignal },
      ),
    );
    if (out.CiphertextBlob === undefined || out.KeyId !== kek.arn) {
      throw new KeyServiceUnavailableError("aws-kms Encrypt: unexpected response");
    }
    return { kekId: kek.arn, kekVersion, ciphertext: Buffer.from(out.CiphertextBlob) };
  }

  async unwrapKey(wrapped: WrappedKey, context: KeyContext): Promise<Buffer> {
    const kek = this.acceptedKek(wrapped, context);
    const out = await this.call("Decrypt", true, (abortSignal) =>
      this.client.send(
        new DecryptCommand({
          // Pinned: a ciphertext never chooses the key it is decrypted under.
          KeyId: kek.arn,
          CiphertextBlob: wrapped.ciphertext,
          EncryptionContext: encryptionContext(context, wrapped.kekVersion),
          EncryptionAlgorithm: "SYMMETRIC_DEFAULT",
        }),
        { abortSignal },
      ),
    );
    const plaintext = out.Plaintext;
    if (plaintext === undefined || out.KeyId !== kek.arn) {
      plaintext?.fill(0);
      throw new DecryptionError();
    }
    return Buffer.from(plaintext.buffer, plaintext.byteOffset, plaintext.byteLength);
  }

  async rewrapKey(wrapped: WrappedKey, context: KeyContext): Promise<WrappedKey> {
    const kek = this.acceptedKek(wrapped, context);
    const kekVersion = currentVersionOf(kek);
    // ReEncrypt decrypts and re-encrypts inside KMS (needs kms:ReEncryptFrom and
    // kms:ReEncryptTo): the DEK never reaches this host.
    const out = await this.call("ReEncrypt", true, (abortSignal) =>
      this.client.send(
        new ReEncryptCommand({
          CiphertextBlob: wrapped.ciphertext,
          SourceKeyId: kek.arn,
          SourceEncryptionContext: encryptionContext(context, wrapped.kekVersion),
          SourceEncryptionAlgorithm: "SYMMETRIC_DEFAULT",
          DestinationKeyId: kek.arn,
          DestinationEncryptionContext: encryptionContext(context, kekVersion),
          DestinationEncryptionAlgorithm: "SYMMETRIC_DEFAULT",
        }),
        { abortSignal },
      ),
    );
    if (out.CiphertextBlob === undefined || out.KeyId !== kek.arn) {
      throw new KeyServiceUnavailableError("aws-kms ReEncrypt: unexpected response");
    }
    return { kekId: kek.arn, kekVersion, ciphertext: Buffer.from(out.CiphertextBlob) };
  }

  /**
   * PCI DSS 3.7.4 (key change at the end of the cryptoperiod): RotateKeyOnDemand gives the key
   * new material; older material still decrypts. KMS completes the rotation asynchronously, so
   * this waits until ListKeyRotations lists it. KMS allows only a few on-demand rotations per key
   * over its lifetime; KMS's yearly automatic rotation is the routine path.
   */
  async rotateKek(environment: Environment): Promise<KekDescription> {
    const kek = this.keks[environment];
    // Counted just before, so a rotation made elsewhere since open() is not taken for this one.
    const before = await this.call("ListKeyRotations", false, (abortSignal) =>
      listRotations(this.client, kek.arn, abortSignal),
    );
    await this.call("RotateKeyOnDemand", false, (abortSignal) =>
      this.client.send(new RotateKeyOnDemandCommand({ KeyId: kek.arn }), { abortSignal }),
    );
    const giveUpAt = Date.now() + ROTATION_WAIT_MS;
    for (;;) {
      const rotations = await this.call("ListKeyRotations", false, (abortSignal) =>
        listRotations(this.client, kek.arn, abortSignal),
      );
      if (rotations.length > before.length) {
        this.keks[environment] = { ...kek, rotations };
        return this.describeOne(environment);
      }
      if (Date.now() >= giveUpAt) {
        throw new KeyServiceUnavailableError(
          `aws-kms: the rotation of ${kek.arn} did not complete within ${ROTATION_WAIT_MS} ms; its new version is used after the next open`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, ROTATION_POLL_MS));
    }
  }

  describe(): readonly KekDescription[] {
    return ENVIRONMENTS.map((environment) => this.describeOne(environment));
  }

  async checkHealth(): Promise<void> {
    for (const environment of ENVIRONMENTS) {
      const kek = this.keks[environment];
      const out = await this.call("DescribeKey", false, (abortSignal) =>
        this.client.send(new DescribeKeyCommand({ KeyId: kek.arn }), { abortSignal }),
      );
      if (out.KeyMetadata === undefined || unusableBecause(out.KeyMetadata) !== undefined) {
        throw new KeyServiceUnavailableError(`aws-kms: ${kek.arn} can no longer be used`);
      }
    }
  }

  async close(): Promise<void> {
    this.client.destroy();
  }

  private describeOne(environment: Environment): KekDescription {
    const kek = this.keks[environment];
    const dates = [kek.createdAt, ...kek.rotations];
    return {
      kind: "aws-kms",
      environment,
      kekId: kek.arn,
      currentVersion: currentVersionOf(kek),
      versions: dates.map((createdAt, i) => ({ version: i + 1, createdAt })),
      algorithm: ALGORITHM,
      strengthBits: 256,
      location: `aws-kms:${kek.arn}`,
    };
  }

  /** The environment's KEK, when the wrap claims it; otherwise the wrap cannot be ours. */
  private acceptedKek(wrapped: WrappedKey, context: KeyContext): KmsKek {
    const kek = this.keks[context.environment];
    const size = wrapped.ciphertext.length;
    if (
      wrapped.kekId !== kek.arn ||
      !Number.isSafeInteger(wrapped.kekVersion) ||
      wrapped.kekVersion < 1 ||
      size < 1 ||
      size > MAX_CIPHERTEXT_BYTES
    ) {
      throw new DecryptionError();
    }
    return kek;
  }

  private async call<T>(
    action: string,
    verifiesWrap: boolean,
    send: (abortSignal: AbortSignal) => Promise<T>,
  ): Promise<T> {
    try {
      return await send(AbortSignal.timeout(this.deadlineMs));
    } catch (err) {
      if (verifiesWrap && isWrapRejection(err)) throw new DecryptionError();
      throw new KeyServiceUnavailableError(`aws-kms ${action} failed: ${errorName(err)}`, {
        cause: err,
      });
    }
  }
}

/**
 * The KMS-native form of wrapAad(): Encrypt, Decrypt and ReEncrypt bind this map to the
 * ciphertext as authenticated data, so a wrap copied to another DEK record, owner, purpose or
 * environment, or relabelled with another version, fails with InvalidCiphertextException. The
 * KEK's identity needs no field: the blob is tied to its key and Decrypt pins the KeyId. KMS
 * logs the context in CloudTrail in the clear: ids only, never card data.
 */
function encryptionContext(context: KeyContext, kekVersion: number): Record<string, string> {
  return {
    "payvault:dek": context.dekId,
    "payvault:owner": context.owner,
    "payvault:purpose": context.purpose,
    "payvault:environment": context.environment,
    "payvault:kek-version": String(kekVersion),
  };
}

/** The errors by which KMS says "this ciphertext does not verify for this key and context". */
function isWrapRejection(err: unknown): boolean {
  return err instanceof InvalidCiphertextException || err instanceof IncorrectKeyException;
}

function errorName(err: unknown): string {
  return err instanceof Error ? err.name : "unknown error";
}

/** Failures that say nothing about the key itself: the service could not be reached or used. */
function isTransient(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
  return (
    status === undefined ||
    status >= 500 ||
    [
      "ThrottlingException",
      "KMSInternalException",
      "DependencyTimeoutException",
      "KeyUnavailableException",
    ].includes(err.name)
  );
}

function unusableBecause(metadata: KeyMetadata): string | undefined {
  if (metadata.Enabled !== true || metadata.KeyState !== "Enabled") {
    return `is not enabled (KeyState ${metadata.KeyState ?? "unknown"})`;
  }
  if (metadata.KeySpec !== "SYMMETRIC_DEFAULT" || metadata.KeyUsage !== "ENCRYPT_DECRYPT") {
    return `is not a symmetric encryption key (KeySpec ${metadata.KeySpec}, KeyUsage ${metadata.KeyUsage})`;
  }
  return undefined;
}

/** DescribeKey and ListKeyRotations for one environment's key, checked for use as a KEK. */
async function loadKek(
  client: KMSClient,
  environment: Environment,
  keyId: string,
  deadlineMs: number,
): Promise<KmsKek> {
  const what = `the ${environment} KMS key "${keyId}"`;
  try {
    const abortSignal = AbortSignal.timeout(deadlineMs);
    const described = await client.send(new DescribeKeyCommand({ KeyId: keyId }), { abortSignal });
    const metadata = described.KeyMetadata;
    const arn = metadata?.Arn;
    if (metadata === undefined || arn === undefined) {
      throw new AwsKmsConfigError(`aws-kms: ${what} was not described`);
    }
    const problem = unusableBecause(metadata);
    if (problem !== undefined) throw new AwsKmsConfigError(`aws-kms: ${what} ${problem}`);
    return {
      arn,
      createdAt: metadata.CreationDate ?? null,
      rotations: await listRotations(client, arn, abortSignal),
    };
  } catch (err) {
    if (err instanceof AwsKmsConfigError) throw err;
    if (err instanceof NotFoundException) {
      throw new AwsKmsConfigError(`aws-kms: ${what} does not exist`, { cause: err });
    }
    const reason = `${what}: ${errorName(err)}`;
    if (isTransient(err)) {
      throw new KeyServiceUnavailableError(`aws-kms: KMS unreachable for ${reason}`, {
        cause: err,
      });
    }
    throw new AwsKmsConfigError(`aws-kms: cannot use ${reason}`, { cause: err });
  }
}

/** Completion dates of the key's completed rotations, oldest first (every page). */
async function listRotations(
  client: KMSClient,
  arn: string,
  abortSignal: AbortSignal,
): Promise<Date[]> {
  const dates: Date[] = [];
  let marker: string | undefined;
  do {
    const page = await client.send(
      new ListKeyRotationsCommand({
        KeyId: arn,
        Limit: 1000,
        ...(marker === undefined ? {} : { Marker: marker }),
      }),
      { abortSignal },
    );
    for (const rotation of page.Rotations ?? []) {
      // Only completed rotations carry a RotationDate (the default ROTATIONS_ONLY lists no other).
      if (rotation.RotationDate !== undefined) dates.push(rotation.RotationDate);
    }
    marker = page.Truncated === true ? page.NextMarker : undefined;
  } while (marker !== undefined);
  return dates.sort((a, b) => a.getTime() - b.getTime());
}

function positiveInteger(value: number, name: string): number {
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new AwsKmsConfigError(`aws-kms: ${name} must be a positive integer`);
  }
  return value;
}
