import type { FastifyRequest } from "fastify";
import { VaultError } from "../errors/registry.js";
import type { AuthThrottle } from "../http/context.js";
import type { Clock } from "../services/clock.js";
import { systemClock } from "../services/clock.js";
import type { AuthBackoff, BackoffState } from "./auth-backoff.js";
import { addressBucketOf } from "./client-address.js";
import { MemoryAuthBackoff } from "./memory-auth-backoff.js";
import { retryAfterSeconds } from "./rate-limit-headers.js";
import { RateLimitUnavailableError } from "./token-bucket.js";

/** API-key credential keys as the auth hook builds them: `pv_live_<key id>` (no secret). */
const API_KEY_ID = /^pv_(live|test)_[0-9A-Za-z]{1,64}$/;
/** What the auth hook derives from a garbled `pv_…` credential: no id to count against. */
const NO_ID = /^pv_/;

export interface BackoffAuthThrottleOptions {
  /** The shared backoff (Redis), or memory on one node. */
  readonly backoff: AuthBackoff;
  /** This node's own backoff while the shared one is down; memory by default. */
  readonly fallback?: AuthBackoff;
  readonly clock?: Clock;
  /** Reports of the shared backoff being down: at once, then at most every 10 s. */
  readonly onUnavailable?: (reason: string, count: number) => void;
}

const REPORT_INTERVAL_MS = 10_000;

/**
 * Exponential backoff of failed authentications (issue 5 point 4; OWASP ASVS V2.2.1, NIST SP
 * 800-63B §5.2.2), per client address and per credential, shared by every node through the
 * backoff store. Keys: `ip:<address or IPv6 /64>` and `cred:<credential key>`.
 *
 * - The client address: while it is blocked, `before` refuses (429 AUTH_BACKOFF, Retry-After)
 *   before any credential is looked at — the admin login's path, where guesses are possible —
 *   and `failed` refuses further failures; the auth hook calls only `failed`, so an unguessable
 *   valid credential from a blocked address (a NAT) still works.
 * - A credential named by the caller (`user:<name>` from the admin login, a refresh-token family):
 *   the same, so a password or TOTP code cannot be guessed faster from many addresses.
 * - An API key id (`pv_live_<id>`): its secret has 256 bits, so no one guesses it, while its id
 *   is not secret (it is in logs, audit events, support tickets). Blocking the id for everyone
 *   would let anyone who knows it lock a merchant's checkout out for up to 15 minutes, again and
 *   again. So a blocked key id refuses only wrong secrets (429 instead of 401): the holder of the
 *   right secret keeps working, and the guesser still backs off exponentially.
 *
 * When the shared store is down, this node's memory backoff takes over (the limit then holds per
 * node), and the outage is reported; authentication itself is never refused for it.
 */
export class BackoffAuthThrottle implements AuthThrottle {
  private readonly backoff: AuthBackoff;
  private readonly fallback: AuthBackoff;
  private readonly clock: Clock;
  private onUnavailable: (reason: string, count: number) => void;
  private outage = { reportedAt: -Infinity, count: 0 };

  constructor(options: BackoffAuthThrottleOptions) {
    this.backoff = options.backoff;
    this.clock = options.clock ?? systemClock;
    this.fallback = options.fallback ?? new MemoryAuthBackoff({ clock: this.clock });
    this.onUnavailable = options.onUnavailable ?? (() => undefined);
  }

  /** Where outages are reported from now on (the HTTP layer's logger). */
  reportOutagesTo(listener: (reason: string, count: number) => void): void {
    this.onUnavailable = listener;
  }

  async before(request: FastifyRequest, credentialKey: string | undefined): Promise<void> {
    const keys = [addressKey(request)];
    if (credentialKey !== undefined && !NO_ID.test(credentialKey))
      keys.push(credentialKeyOf(credentialKey));
    refuseIfBlocked(await this.use((store) => store.checkAll(keys)));
  }

  async failed(request: FastifyRequest, credentialKey: string | undefined): Promise<void> {
    const keys = [addressKey(request)];
    // A garbled `pv_…` credential names no key: counting `pv_live` would block every such client.
    if (
      credentialKey !== undefined &&
      (API_KEY_ID.test(credentialKey) || !NO_ID.test(credentialKey))
    )
      keys.push(credentialKeyOf(credentialKey));
    const state = await this.use((store) => store.failureUnlessBlocked(keys));
    // Made while blocked (a blocked API key id, or a block set by another node meanwhile):
    // refused like any attempt in the wait, and not counted.
    if (!state.counted) refuseIfBlocked(state);
  }

  async succeeded(_request: FastifyRequest, credentialKey: string): Promise<void> {
    // The address keeps its count: one valid login must not reset a guesser's wait.
    await this.use((store) => store.success(credentialKeyOf(credentialKey)));
  }

  private async use<T>(work: (store: AuthBackoff) => Promise<T>): Promise<T> {
    try {
      return await work(this.backoff);
    } catch (err) {
      if (!(err instanceof RateLimitUnavailableError)) throw err;
      this.report(err.reason);
      return work(this.fallback);
    }
  }

  private report(reason: string): void {
    const now = this.clock.now().getTime();
    this.outage.count += 1;
    if (now - this.outage.reportedAt < REPORT_INTERVAL_MS) return;
    this.onUnavailable(reason, this.outage.count);
    this.outage = { reportedAt: now, count: 0 };
  }
}

function addressKey(request: FastifyRequest): string {
  return `ip:${addressBucketOf(request.ip)}`;
}

/** Printable ASCII only (a username may be anything): other characters are hex-escaped. */
function credentialKeyOf(credentialKey: string): string {
  const printable = credentialKey.replace(
    /[^\x21-\x7e]|%/g,
    (c) => `%${c.codePointAt(0)?.toString(16) ?? ""}`,
  );
  return `cred:${printable}`.slice(0, 512);
}

function refuseIfBlocked(state: BackoffState): void {
  if (!state.blocked) return;
  throw new VaultError("AUTH_BACKOFF", {
    headers: { "retry-after": String(retryAfterSeconds(state.retryAfterMs)) },
  });
}
