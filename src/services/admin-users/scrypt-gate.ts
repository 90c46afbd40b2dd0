import { VaultError } from "../../errors/registry.js";

/** scrypt at the OWASP parameters holds 128 MiB per call: at most this many run at once. */
export const MAX_CONCURRENT_SCRYPT = 4;
/** Callers waiting beyond this are refused at once (429) rather than queued without bound. */
export const MAX_WAITING_SCRYPT = 64;

/**
 * A counting semaphore around password hashing and verification, so a burst of logins cannot
 * take the vault's memory (docs/admin-auth.md: "the number of concurrent hashes bounded").
 */
export class ScryptGate {
  private running = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(
    private readonly limit = MAX_CONCURRENT_SCRYPT,
    private readonly maxWaiting = MAX_WAITING_SCRYPT,
  ) {}

  async run<T>(work: () => Promise<T>): Promise<T> {
    if (this.running >= this.limit) {
      if (this.waiting.length >= this.maxWaiting) throw new VaultError("RATE_LIMITED");
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    } else {
      this.running++;
    }
    try {
      return await work();
    } finally {
      const next = this.waiting.shift();
      // The slot passes straight to the next waiter, so `running` never dips below the truth.
      if (next === undefined) this.running--;
      else next();
    }
  }
}
