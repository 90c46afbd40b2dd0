import { inspect } from "node:util";

const MASK = "[secret]";

/**
 * Overwrites a buffer with zeros in place. Best effort: the JS engine may have
 * copied the bytes elsewhere, but the copy we control stops holding key
 * material (DESIGN.md: unwrapped DEKs are zeroed when evicted; PCI DSS 3.6.1).
 */
export function zeroize(buf: Uint8Array): void {
  buf.fill(0);
}

/**
 * Key material or other secret bytes that cannot leak through logging:
 * `String()`, template literals, `JSON.stringify` and `util.inspect` (so also
 * `console.log` and pino) all print "[secret]" (STYLE.md: secret-bearing values
 * are wrapped types).
 *
 * Ownership: {@link SecretBytes.from} takes the caller's memory WITHOUT copying
 * it, so that {@link SecretBytes.zeroize} wipes the only copy. The caller must
 * not keep using the buffer it handed over. Use {@link SecretBytes.copyOf} when
 * the source must stay intact.
 */
export class SecretBytes {
  #bytes: Buffer;
  #zeroized = false;

  private constructor(bytes: Buffer) {
    this.#bytes = bytes;
  }

  /** Wraps `buf` in place (same memory, no copy); the wrapper now owns it. */
  static from(buf: Uint8Array): SecretBytes {
    return new SecretBytes(Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength));
  }

  /** Wraps a fresh copy of `buf`; zeroizing it leaves `buf` untouched. */
  static copyOf(buf: Uint8Array): SecretBytes {
    return new SecretBytes(Buffer.from(buf));
  }

  get byteLength(): number {
    return this.#bytes.length;
  }

  get isZeroized(): boolean {
    return this.#zeroized;
  }

  /** Lends the bytes to `fn`; `fn` must not keep a reference to them. */
  use<T>(fn: (bytes: Buffer) => T): T {
    if (this.#zeroized) {
      throw new Error("secret was zeroized");
    }
    return fn(this.#bytes);
  }

  /** Overwrites the bytes with zeros; every later `use` throws. Idempotent. */
  zeroize(): void {
    zeroize(this.#bytes);
    this.#zeroized = true;
  }

  toString(): string {
    return MASK;
  }

  toJSON(): string {
    return MASK;
  }

  [inspect.custom](): string {
    return MASK;
  }
}
