import { endianness } from "node:os";
import type { GcmParams, Mechanism, PKCS11, Template } from "pkcs11js";
import pkcs11js from "pkcs11js";
import { DecryptionError } from "../crypto/decryption-error.js";
import { randomBytes } from "../crypto/random.js";
import { zeroize } from "../crypto/secret.js";
import type {
  Environment,
  KekDescription,
  KeyContext,
  KeyManager,
  WrappedKey,
} from "./key-manager.js";
import {
  ENVIRONMENTS,
  isEnvironment,
  KeyServiceUnavailableError,
  rewrapThroughHost,
} from "./key-manager.js";
import { wrapAad } from "./wrap-aad.js";

export interface Pkcs11KeyManagerOptions {
  /** Path of the vendor's PKCS#11 library, e.g. /usr/lib/softhsm/libsofthsm2.so. */
  readonly module: string;
  /** CK_TOKEN_INFO.label of the token holding the KEKs (at most 32 bytes). */
  readonly tokenLabel: string;
  /** The normal user's (CKU_USER) PIN. Never logged and never part of an error message. */
  readonly pin: string;
  /** KEK objects are labelled `${labelPrefix}-live` and `${labelPrefix}-test`. */
  readonly labelPrefix?: string;
  /**
   * Generate version 1 inside the token for an environment that has no KEK yet (first start).
   * When false, a missing KEK is a Pkcs11ConfigError: a vault must never quietly start on a
   * new, empty KEK because a label was mistyped.
   */
  readonly create: boolean;
}

/** The token, PIN or KEK objects cannot serve as configured; raised by open() only. */
export class Pkcs11ConfigError extends Error {
  override readonly name = "Pkcs11ConfigError";
}

const DEFAULT_LABEL_PREFIX = "payvault-kek";
const ALGORITHM = "AES-256-GCM (CKM_AES_GCM)";
const KEK_BYTES = 32;
/** NIST SP 800-38D 8.2.2: a 96-bit random IV; 8.3: one KEK version stays far below 2^32 wraps. */
const IV_BYTES = 12;
const TAG_BYTES = 16;
const VERSION_ID_BYTES = 4;
const MAX_TOKEN_LABEL_BYTES = 32;
// CK_RVs pkcs11js has no name for: CKR_ACTION_PROHIBITED (v2.40), CKR_AEAD_DECRYPT_FAILED (v3.0).
const CKR_ACTION_PROHIBITED = 0x1b;
const CKR_AEAD_DECRYPT_FAILED = 0x35;
/** CK_STATE of a R/W session whose user is logged in; pkcs11js exports no CKS_ constants. */
const CKS_RW_USER_FUNCTIONS = 3;
/** The token says the ciphertext, tag or AAD is wrong: the data's fault, not the HSM's. */
const DATA_FAILURES = new Set([
  pkcs11js.CKR_ENCRYPTED_DATA_INVALID,
  pkcs11js.CKR_ENCRYPTED_DATA_LEN_RANGE,
  CKR_AEAD_DECRYPT_FAILED,
]);
/** Generic failures: SoftHSM2 2.6 reports a GCM tag mismatch as CKR_GENERAL_ERROR. */
const AMBIGUOUS_FAILURES = new Set([pkcs11js.CKR_GENERAL_ERROR, pkcs11js.CKR_FUNCTION_FAILED]);
const PIN_FAILURES = new Set([
  pkcs11js.CKR_PIN_INCORRECT,
  pkcs11js.CKR_PIN_INVALID,
  pkcs11js.CKR_PIN_LEN_RANGE,
  pkcs11js.CKR_PIN_EXPIRED,
  pkcs11js.CKR_PIN_LOCKED,
]);

type Handle = Buffer;

/**
 * C_Initialize and C_Finalize act on the whole process (PKCS#11 v2.40 section 5.4), and dlopen
 * gives every PKCS11 object of one path the same library. So managers on one module share one
 * loaded copy, counted: the last close() finalizes it, and a close() never finalizes under a
 * manager that is still open.
 */
class LoadedModule {
  static readonly #byPath = new Map<string, LoadedModule>();
  #users = 0;
  /** Bumped at each C_Initialize made here: session handles of an older generation are void. */
  generation = 0;

  private constructor(
    readonly path: string,
    readonly p11: PKCS11,
  ) {}

  static acquire(path: string): LoadedModule {
    let loaded = LoadedModule.#byPath.get(path);
    if (loaded === undefined) {
      const p11 = new pkcs11js.PKCS11();
      p11.load(path);
      loaded = new LoadedModule(path, p11);
      LoadedModule.#byPath.set(path, loaded);
    }
    loaded.#users += 1;
    return loaded;
  }

  get shared(): boolean {
    return this.#users > 1;
  }

  /** C_Initialize, unless the library already is initialized (by us or anyone in the process). */
  initialize(): void {
    try {
      this.p11.C_Initialize();
      this.generation += 1;
    } catch (err) {
      if (rvOf(err) !== pkcs11js.CKR_CRYPTOKI_ALREADY_INITIALIZED) throw err;
    }
  }

  release(): void {
    this.#users -= 1;
    if (this.#users > 0) return;
    LoadedModule.#byPath.delete(this.path);
    ignoreFailure(() => this.p11.C_Finalize());
    ignoreFailure(() => this.p11.close());
  }
}

interface Kek {
  readonly kekId: string;
  /** CKA_LABEL shared by every version of this environment's KEK. */
  readonly label: string;
  /** Version (CKA_ID) → object handle, valid for the current connection. */
  versions: Map<number, Handle>;
}

/**
 * The `pkcs11` KeyManager: each environment's KEK is an AES-256 secret key object generated
 * inside an HSM's token (CKM_AES_KEY_GEN) with CKA_SENSITIVE true and CKA_EXTRACTABLE false, so
 * its value never leaves the device, neither in the clear nor wrapped (PCI DSS v4.0.1 3.6.1.2:
 * the KEK is kept inside a secure cryptographic device; 3.6.1.3: no custodian and not this host
 * ever holds it in the clear). The vault's DEKs are encrypted and decrypted by the HSM with
 * C_Encrypt/C_Decrypt under CKM_AES_GCM (PKCS#11 v2.40 / v3.0, CK_GCM_PARAMS).
 *
 * Objects: every version of an environment's KEK has CKA_LABEL `${labelPrefix}-${environment}`
 * and its version number in CKA_ID as 4 bytes, unsigned big-endian (version 1 = 00 00 00 01).
 * The current version is the highest. The kekId is `pkcs11:${tokenLabel}/${label}`: stable
 * across reopen and rotation, different for live and test, and bound into every wrap's AAD,
 * so the token label and the label prefix must not change while wraps exist.
 *
 * Wrapped blob: IV (12 bytes, from the vault's CSPRNG) || GCM ciphertext || tag (16 bytes), with
 * AAD = wrapAad(kekId, version, context).
 *
 * Failures: a wrap that does not verify (bad tag, wrong context, wrong kekId, unknown version,
 * short blob) is the one DecryptionError. Anything about the HSM (closed session, logged out,
 * finalized library, device error, token gone) is KeyServiceUnavailableError, whose cause is for
 * the operator's log only; the manager then reopens its session, logs in again and finds its
 * KEK objects again, at once (one retry) and on every later call, so it recovers by itself.
 *
 * pkcs11js calls are synchronous and every operation's C_*Init and C_* run in one synchronous
 * stretch, so the single session's GCM state is never interleaved between callers.
 */
export class Pkcs11KeyManager implements KeyManager {
  readonly kind = "pkcs11" as const;
  readonly #module: LoadedModule;
  readonly #tokenLabel: string;
  /** A private field: util.inspect, JSON.stringify and pino never see it. */
  readonly #pin: string;
  readonly #keks: Record<Environment, Kek>;
  #session: Handle | null = null;
  #generation = 0;
  #closed = false;

  private constructor(module: LoadedModule, options: Pkcs11KeyManagerOptions, prefix: string) {
    this.#module = module;
    this.#tokenLabel = options.tokenLabel;
    this.#pin = options.pin;
    const kek = (environment: Environment): Kek => {
      const label = `${prefix}-${environment}`;
      return { kekId: `pkcs11:${options.tokenLabel}/${label}`, label, versions: new Map() };
    };
    this.#keks = { live: kek("live"), test: kek("test") };
  }

  static async open(options: Pkcs11KeyManagerOptions): Promise<Pkcs11KeyManager> {
    const prefix = options.labelPrefix ?? DEFAULT_LABEL_PREFIX;
    if (options.module.length === 0) throw new Pkcs11ConfigError("pkcs11: module is required");
    if (prefix.length === 0) throw new Pkcs11ConfigError("pkcs11: labelPrefix must not be empty");
    const labelBytes = Buffer.byteLength(options.tokenLabel, "utf8");
    if (labelBytes === 0 || labelBytes > MAX_TOKEN_LABEL_BYTES) {
      throw new Pkcs11ConfigError("pkcs11: tokenLabel must be 1 to 32 bytes");
    }
    let module: LoadedModule;
    try {
      module = LoadedModule.acquire(options.module);
    } catch (err) {
      throw new Pkcs11ConfigError(`pkcs11: cannot load module ${options.module}`, { cause: err });
    }
    const manager = new Pkcs11KeyManager(module, options, prefix);
    try {
      manager.#connect(options.create);
    } catch (err) {
      module.release();
      if (err instanceof Pkcs11ConfigError) throw err;
      throw new KeyServiceUnavailableError(
        `pkcs11: cannot open token "${options.tokenLabel}": ${rvName(err)}`,
        { cause: err },
      );
    }
    return manager;
  }

  async wrapKey(key: Uint8Array, context: KeyContext): Promise<WrappedKey> {
    const kek = this.#kekOf(context.environment);
    if (key.byteLength === 0) throw new RangeError("pkcs11: nothing to wrap");
    const plaintext = Buffer.from(key.buffer, key.byteOffset, key.byteLength);
    return this.#run("wrap", (p11, session) => {
      const version = currentVersion(kek);
      const iv = randomBytes(IV_BYTES);
      const out = Buffer.alloc(plaintext.length + TAG_BYTES);
      p11.C_EncryptInit(
        session,
        gcm(iv, wrapAad(kek.kekId, version, context)),
        handleOf(kek, version),
      );
      const sealed = p11.C_Encrypt(session, plaintext, out);
      if (sealed.length !== out.length) {
        throw new Error("CKM_AES_GCM returned an unexpected length");
      }
      return { kekId: kek.kekId, kekVersion: version, ciphertext: Buffer.concat([iv, sealed]) };
    });
  }

  async unwrapKey(wrapped: WrappedKey, context: KeyContext): Promise<Buffer> {
    if (!isEnvironment(context.environment)) throw new DecryptionError();
    const kek = this.#kekOf(context.environment);
    const blob = wrapped.ciphertext;
    const version = wrapped.kekVersion;
    if (wrapped.kekId !== kek.kekId || blob.length <= IV_BYTES + TAG_BYTES) {
      throw new DecryptionError();
    }
    return this.#run("unwrap", (p11, session) => {
      if (!kek.versions.has(version) && version > currentVersion(kek)) {
        // Another vault node on this token rotated the KEK: look for its objects again, once.
        kek.versions = findVersions(p11, session, kek.label);
      }
      const handle = kek.versions.get(version);
      if (handle === undefined) throw new DecryptionError();
      const body = blob.subarray(IV_BYTES);
      const out = Buffer.alloc(body.length);
      try {
        const aad = wrapAad(kek.kekId, version, context);
        p11.C_DecryptInit(session, gcm(blob.subarray(0, IV_BYTES), aad), handle);
        const plaintext = p11.C_Decrypt(session, body, out);
        const dek = Buffer.alloc(plaintext.length); // unpooled: the caller zeroes it alone
        plaintext.copy(dek);
        return dek;
      } catch (err) {
        if (isDataFailure(p11, session, err)) throw new DecryptionError();
        throw err;
      } finally {
        zeroize(out);
      }
    });
  }

  /**
   * Unwraps in the HSM, then wraps under the current version: the DEK crosses host memory
   * briefly and is zeroed after. Doing it wholly inside the token (C_UnwrapKey into a session
   * object, then C_WrapKey) needs CKM_AES_GCM with CKF_UNWRAP/CKF_WRAP, which SoftHSM2 and many
   * HSMs offer for C_Encrypt/C_Decrypt only.
   */
  rewrapKey(wrapped: WrappedKey, context: KeyContext): Promise<WrappedKey> {
    return rewrapThroughHost(this, wrapped, context);
  }

  async rotateKek(environment: Environment): Promise<KekDescription> {
    const kek = this.#kekOf(environment);
    this.#run("rotate", (p11, session) => {
      // Start from the token as it is now, in case another node rotated meanwhile.
      kek.versions = findVersions(p11, session, kek.label);
      const next = currentVersion(kek) + 1;
      kek.versions.set(next, generateKek(p11, session, kek.label, next));
    });
    return this.#describeOne(environment);
  }

  describe(): readonly KekDescription[] {
    return ENVIRONMENTS.map((environment) => this.#describeOne(environment));
  }

  /** C_GetSessionInfo: the session is open and logged in (CKS_RW_USER_FUNCTIONS). */
  async checkHealth(): Promise<void> {
    this.#run("health check", (p11, session) => {
      if (p11.C_GetSessionInfo(session).state !== CKS_RW_USER_FUNCTIONS) {
        throw new Error("the session is not logged in");
      }
    });
  }

  /** Logs out (unless another open manager shares the login), closes the session, C_Finalize. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const session = this.#liveSession();
    if (session !== null) {
      const { p11 } = this.#module;
      // The login belongs to the whole application (PKCS#11 v2.40 section 5.6): a logout here
      // would log out another manager on this token too.
      if (!this.#module.shared) ignoreFailure(() => p11.C_Logout(session));
      ignoreFailure(() => p11.C_CloseSession(session));
    }
    this.#session = null;
    this.#module.release();
  }

  #kekOf(environment: Environment): Kek {
    if (this.#closed) throw new KeyServiceUnavailableError("pkcs11: the key manager is closed");
    if (!isEnvironment(environment)) throw new RangeError("pkcs11: unknown environment");
    return this.#keks[environment];
  }

  #describeOne(environment: Environment): KekDescription {
    const kek = this.#keks[environment];
    const versions = [...kek.versions.keys()].sort((a, b) => a - b);
    return {
      kind: this.kind,
      environment,
      kekId: kek.kekId,
      currentVersion: currentVersion(kek),
      versions: versions.map((version) => ({ version, createdAt: null })),
      algorithm: ALGORITHM,
      strengthBits: 256,
      // RFC 7512 PKCS#11 URI attributes, percent-encoded.
      location: `pkcs11:token=${encodeURIComponent(this.#tokenLabel)};object=${encodeURIComponent(kek.label)}`,
    };
  }

  /**
   * Runs one HSM operation on the session, connecting first if there is none. On any failure
   * that is not the data's (DecryptionError), the session is dropped and the operation runs once
   * more on a fresh one; a second failure is KeyServiceUnavailableError, and the next call
   * starts over.
   */
  #run<T>(action: string, operation: (p11: PKCS11, session: Handle) => T): T {
    if (this.#closed) throw new KeyServiceUnavailableError("pkcs11: the key manager is closed");
    let failure: unknown;
    for (let attempt = 0; attempt < 2; attempt += 1) {
      try {
        const session = this.#liveSession() ?? this.#connect(false);
        return operation(this.#module.p11, session);
      } catch (err) {
        if (err instanceof DecryptionError) throw err;
        failure = err;
        this.#disconnect();
      }
    }
    throw new KeyServiceUnavailableError(`pkcs11 ${action} failed: ${rvName(failure)}`, {
      cause: failure,
    });
  }

  /** The session, unless the library was initialized again since it was opened. */
  #liveSession(): Handle | null {
    return this.#generation === this.#module.generation ? this.#session : null;
  }

  #disconnect(): void {
    const session = this.#liveSession();
    // A handle from an older generation may now name another manager's session: never close it.
    if (session !== null) ignoreFailure(() => this.#module.p11.C_CloseSession(session));
    this.#session = null;
  }

  /** C_Initialize, find the token, open a R/W session, log in, find (or create) both KEKs. */
  #connect(create: boolean): Handle {
    const { p11 } = this.#module;
    this.#module.initialize();
    const slot = findTokenSlot(p11, this.#tokenLabel);
    const session = p11.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
    try {
      login(p11, session, this.#pin, this.#tokenLabel);
      for (const environment of ENVIRONMENTS) {
        const kek = this.#keks[environment];
        kek.versions = findVersions(p11, session, kek.label);
        if (kek.versions.size > 0) continue;
        if (!create) {
          throw new Pkcs11ConfigError(
            `pkcs11: no KEK labelled "${kek.label}" on token "${this.#tokenLabel}"; open with create: true to generate one`,
          );
        }
        kek.versions.set(1, generateKek(p11, session, kek.label, 1));
      }
    } catch (err) {
      ignoreFailure(() => p11.C_CloseSession(session));
      throw err;
    }
    this.#session = session;
    this.#generation = this.#module.generation;
    return session;
  }
}

/** CK_GCM_PARAMS in full: pkcs11js's CK_PARAMS_AES_GCM leaves ulIvBits unset. */
function gcm(iv: Buffer, aad: Buffer): Mechanism {
  const parameter: GcmParams = {
    type: pkcs11js.CK_PARAMS_AES_GCM_v240,
    iv,
    ivBits: IV_BYTES * 8,
    aad,
    tagBits: TAG_BYTES * 8,
  };
  return { mechanism: pkcs11js.CKM_AES_GCM, parameter };
}

function findTokenSlot(p11: PKCS11, tokenLabel: string): Handle {
  const slots = p11
    .C_GetSlotList(true)
    .filter((slot) => p11.C_GetTokenInfo(slot).label.trimEnd() === tokenLabel);
  const [slot] = slots;
  if (slot === undefined) throw new Pkcs11ConfigError(`pkcs11: no token labelled "${tokenLabel}"`);
  if (slots.length > 1) {
    throw new Pkcs11ConfigError(`pkcs11: more than one token labelled "${tokenLabel}"`);
  }
  return slot;
}

function login(p11: PKCS11, session: Handle, pin: string, tokenLabel: string): void {
  try {
    p11.C_Login(session, pkcs11js.CKU_USER, pin);
  } catch (err) {
    const rv = rvOf(err);
    // The login state is per application and token: another manager in this process already
    // logged in (with the PIN checked then; the token does not check it again now).
    if (rv === pkcs11js.CKR_USER_ALREADY_LOGGED_IN) return;
    if (rv !== undefined && PIN_FAILURES.has(rv)) {
      throw new Pkcs11ConfigError(
        `pkcs11: user login to token "${tokenLabel}" refused (${rvName(err)}): check the PIN`,
      );
    }
    throw err;
  }
}

/**
 * The KEK's versions on the token, by CKA_ID. Every object must be a non-extractable, sensitive
 * AES-256 key that may encrypt and decrypt: a KEK that could leave the HSM is refused (PCI DSS
 * 3.6.1.3), whoever created it.
 */
function findVersions(p11: PKCS11, session: Handle, label: string): Map<number, Handle> {
  p11.C_FindObjectsInit(session, [
    { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
    { type: pkcs11js.CKA_TOKEN, value: true },
    { type: pkcs11js.CKA_LABEL, value: label },
  ]);
  const handles: Handle[] = [];
  try {
    for (let batch = p11.C_FindObjects(session, 16); batch.length > 0; ) {
      handles.push(...batch);
      batch = p11.C_FindObjects(session, 16);
    }
  } finally {
    p11.C_FindObjectsFinal(session);
  }
  const versions = new Map<number, Handle>();
  for (const handle of handles) {
    const [id, keyType, length, sensitive, extractable, encrypt, decrypt] = p11
      .C_GetAttributeValue(session, handle, [
        { type: pkcs11js.CKA_ID },
        { type: pkcs11js.CKA_KEY_TYPE },
        { type: pkcs11js.CKA_VALUE_LEN },
        { type: pkcs11js.CKA_SENSITIVE },
        { type: pkcs11js.CKA_EXTRACTABLE },
        { type: pkcs11js.CKA_ENCRYPT },
        { type: pkcs11js.CKA_DECRYPT },
      ])
      .map((attribute) => attribute.value);
    const version = id?.length === VERSION_ID_BYTES ? id.readUInt32BE(0) : 0;
    if (version === 0) {
      throw new Pkcs11ConfigError(`pkcs11: "${label}" has an object whose CKA_ID is no version`);
    }
    const usable =
      ulong(keyType) === pkcs11js.CKK_AES &&
      ulong(length) === KEK_BYTES &&
      bool(sensitive) &&
      !bool(extractable) &&
      bool(encrypt) &&
      bool(decrypt);
    if (!usable) {
      throw new Pkcs11ConfigError(
        `pkcs11: "${label}" version ${version} is not a sensitive, non-extractable AES-256 key that can encrypt and decrypt`,
      );
    }
    if (versions.has(version)) {
      throw new Pkcs11ConfigError(`pkcs11: "${label}" has two objects for version ${version}`);
    }
    versions.set(version, handle);
  }
  return versions;
}

/**
 * C_GenerateKey CKM_AES_KEY_GEN: the key is created inside the token and its value never exists
 * outside it (PCI DSS 3.6.1.2). Least privilege: it encrypts and decrypts, nothing else, and it
 * can be neither changed (CKA_MODIFIABLE) nor copied (CKA_COPYABLE, v2.40) into a weaker object.
 */
function generateKek(p11: PKCS11, session: Handle, label: string, version: number): Handle {
  const id = Buffer.alloc(VERSION_ID_BYTES);
  id.writeUInt32BE(version, 0);
  const template: Template = [
    { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
    { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_AES },
    { type: pkcs11js.CKA_VALUE_LEN, value: KEK_BYTES },
    { type: pkcs11js.CKA_LABEL, value: label },
    { type: pkcs11js.CKA_ID, value: id },
    { type: pkcs11js.CKA_TOKEN, value: true },
    { type: pkcs11js.CKA_PRIVATE, value: true },
    { type: pkcs11js.CKA_SENSITIVE, value: true },
    { type: pkcs11js.CKA_EXTRACTABLE, value: false },
    { type: pkcs11js.CKA_ENCRYPT, value: true },
    { type: pkcs11js.CKA_DECRYPT, value: true },
    { type: pkcs11js.CKA_WRAP, value: false },
    { type: pkcs11js.CKA_UNWRAP, value: false },
    { type: pkcs11js.CKA_SIGN, value: false },
    { type: pkcs11js.CKA_VERIFY, value: false },
    { type: pkcs11js.CKA_DERIVE, value: false },
    { type: pkcs11js.CKA_MODIFIABLE, value: false },
    { type: pkcs11js.CKA_COPYABLE, value: false },
  ];
  return p11.C_GenerateKey(session, { mechanism: pkcs11js.CKM_AES_KEY_GEN }, template);
}

/**
 * Whether a failed C_Decrypt was about the data. Generic codes (SoftHSM2's tag mismatch) count
 * as the data's fault only while the session still answers; otherwise the HSM is at fault.
 */
function isDataFailure(p11: PKCS11, session: Handle, err: unknown): boolean {
  const rv = rvOf(err);
  if (rv === undefined) return false;
  if (DATA_FAILURES.has(rv)) return true;
  if (!AMBIGUOUS_FAILURES.has(rv)) return false;
  try {
    p11.C_GetSessionInfo(session);
    return true;
  } catch {
    return false;
  }
}

function currentVersion(kek: Kek): number {
  return Math.max(0, ...kek.versions.keys());
}

function handleOf(kek: Kek, version: number): Handle {
  const handle = kek.versions.get(version);
  if (handle === undefined) throw new Error(`no object for KEK version ${version}`);
  return handle;
}

/** The CK_RV of a pkcs11js failure; some methods throw a plain Error "CKR_NAME:rv". */
function rvOf(err: unknown): number | undefined {
  if (!(err instanceof Error)) return undefined;
  const code: unknown = (err as { code?: unknown }).code;
  if (typeof code === "number" && code > 0) return code;
  const match = /CKR_[A-Z0-9_]+:(\d+)/.exec(err.message);
  return match?.[1] === undefined ? undefined : Number(match[1]);
}

const RV_NAMES = new Map<number, string>([
  [CKR_ACTION_PROHIBITED, "CKR_ACTION_PROHIBITED"],
  [CKR_AEAD_DECRYPT_FAILED, "CKR_AEAD_DECRYPT_FAILED"],
]);
for (const [name, value] of Object.entries(pkcs11js)) {
  if (name.startsWith("CKR_") && typeof value === "number" && !RV_NAMES.has(value)) {
    RV_NAMES.set(value, name);
  }
}

/** For messages: the CKR_ name, or the error's own message when it carries no CK_RV. */
function rvName(err: unknown): string {
  const rv = rvOf(err);
  if (rv !== undefined) return RV_NAMES.get(rv) ?? `CK_RV 0x${rv.toString(16)}`;
  return err instanceof Error ? err.message : String(err);
}

function bool(value: Buffer | undefined): boolean {
  return value !== undefined && value.length > 0 && value.some((byte) => byte !== 0);
}

/** A CK_ULONG attribute value, in the host's byte order and width. */
function ulong(value: Buffer | undefined): number | undefined {
  if (value === undefined) return undefined;
  const little = endianness() === "LE";
  if (value.length === 8) return Number(little ? value.readBigUInt64LE() : value.readBigUInt64BE());
  if (value.length === 4) return little ? value.readUInt32LE() : value.readUInt32BE();
  return undefined;
}

function ignoreFailure(action: () => void): void {
  try {
    action();
  } catch {
    // Cleanup of something already gone.
  }
}
