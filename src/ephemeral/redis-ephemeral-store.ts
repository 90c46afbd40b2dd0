import { Redis } from "ioredis";
import { redisFailureReason } from "../redis/failure-reason.js";
import type { EphemeralStore } from "./ephemeral-store.js";
import {
  checkKey,
  checkPrefix,
  checkTtl,
  DEFAULT_EPHEMERAL_PREFIX,
  EphemeralStoreUnavailableError,
} from "./ephemeral-store.js";

/**
 * How `take` gets and deletes in one step: `GETDEL` (Redis 6.2+), or a Lua script that does GET
 * then DEL, which Redis runs atomically, for older servers.
 */
export type TakeMode = "getdel" | "script";

export interface RedisEphemeralStoreOptions {
  /** redis:// or rediss:// URL; it may carry credentials, so it never appears in an error. */
  readonly url: string;
  readonly prefix?: string;
  /** Bound on opening the connection (TCP and the ready check) at start and on reconnects. */
  readonly connectTimeoutMs?: number;
  /** Bound on each command: a Redis that accepts but never answers fails the request. */
  readonly commandTimeoutMs?: number;
  /** Detected from the server version unless given (tests force `script` to cover it). */
  readonly takeMode?: TakeMode;
  /** Told every connection error the client sees (reason only), e.g. to log it. */
  readonly onError?: (reason: string) => void;
}

const DEFAULT_CONNECT_TIMEOUT_MS = 1_000;
const DEFAULT_COMMAND_TIMEOUT_MS = 1_000;
const MAX_RECONNECT_DELAY_MS = 2_000;

/** GET and DEL in one script: Redis runs a script atomically, so no other client sees between. */
const TAKE_SCRIPT =
  "local v = redis.call('GET', KEYS[1]) if v then redis.call('DEL', KEYS[1]) end return v";

/** The first server version with GETDEL. */
const GETDEL_SINCE: readonly [number, number] = [6, 2];

/**
 * The shared adapter: one Redis for every vault node. `SET key value PX ttl NX` for putIfAbsent,
 * `GETDEL` for take; Redis expires keys itself. The client fails fast instead of queueing: no
 * offline queue, one retry per command, bounded connect and command timeouts, so a dead Redis
 * turns into EphemeralStoreUnavailableError within about a second rather than a hung request.
 * Nothing needs persistence: a Redis restart loses CVCs (they are asked for again) and `jti`s of
 * tokens that are still valid for at most a few minutes.
 */
export class RedisEphemeralStore implements EphemeralStore {
  private constructor(
    private readonly client: Redis,
    readonly prefix: string,
    readonly takeMode: TakeMode,
  ) {}

  /** Connects, and checks the server answers, within `connectTimeoutMs`. */
  static async connect(options: RedisEphemeralStoreOptions): Promise<RedisEphemeralStore> {
    const prefix = options.prefix ?? DEFAULT_EPHEMERAL_PREFIX;
    checkPrefix(prefix);
    const connectTimeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    const client = new Redis(options.url, {
      lazyConnect: true,
      connectTimeout: connectTimeoutMs,
      commandTimeout: options.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS,
      maxRetriesPerRequest: 1,
      enableOfflineQueue: false,
      retryStrategy: (times) => Math.min(times * 100, MAX_RECONNECT_DELAY_MS),
    });
    // Without a listener ioredis prints every connection error to the console.
    client.on("error", (err: unknown) => options.onError?.(redisFailureReason(err)));
    try {
      await withDeadline(client.connect(), connectTimeoutMs);
      const takeMode = options.takeMode ?? (await detectTakeMode(client));
      return new RedisEphemeralStore(client, prefix, takeMode);
    } catch (err) {
      client.disconnect();
      throw unavailable(err);
    }
  }

  async putIfAbsent(key: string, value: Uint8Array, ttlMs: number): Promise<boolean> {
    const name = this.nameOf(key, ttlMs);
    const reply = await this.run(() => this.client.set(name, asBuffer(value), "PX", ttlMs, "NX"));
    return reply === "OK";
  }

  async put(key: string, value: Uint8Array, ttlMs: number): Promise<void> {
    const name = this.nameOf(key, ttlMs);
    await this.run(() => this.client.set(name, asBuffer(value), "PX", ttlMs));
  }

  async take(key: string): Promise<Uint8Array | undefined> {
    const name = this.nameOf(key);
    const reply =
      this.takeMode === "getdel"
        ? await this.run(() => this.client.getdelBuffer(name))
        : await this.run(() => this.client.callBuffer("EVAL", TAKE_SCRIPT, 1, name));
    if (reply === null) return undefined;
    if (!Buffer.isBuffer(reply)) throw new EphemeralStoreUnavailableError("unexpected reply");
    return reply;
  }

  async count(key: string, ttlMs: number): Promise<number> {
    const name = this.nameOf(key, ttlMs);
    // One transaction: create the counter with its TTL if absent, then add one (INCR keeps it).
    const replies = await this.run(() =>
      this.client.multi().set(name, "0", "PX", ttlMs, "NX").incr(name).exec(),
    );
    const counted = replies?.[1];
    if (counted === undefined || counted[0] !== null || typeof counted[1] !== "number") {
      throw new EphemeralStoreUnavailableError("unexpected reply");
    }
    return counted[1];
  }

  async delete(key: string): Promise<void> {
    const name = this.nameOf(key);
    await this.run(() => this.client.del(name));
  }

  async close(): Promise<void> {
    if (this.client.status === "ready") {
      try {
        await withDeadline(this.client.quit(), DEFAULT_COMMAND_TIMEOUT_MS);
        return;
      } catch {
        // Fall through: drop the connection without waiting for Redis.
      }
    }
    this.client.disconnect();
  }

  private nameOf(key: string, ttlMs?: number): string {
    checkKey(key);
    if (ttlMs !== undefined) checkTtl(ttlMs);
    return this.prefix + key;
  }

  private async run<T>(command: () => Promise<T>): Promise<T> {
    try {
      return await command();
    } catch (err) {
      throw unavailable(err);
    }
  }
}

async function detectTakeMode(client: Redis): Promise<TakeMode> {
  const info = await client.info("server");
  const match = /^redis_version:(\d+)\.(\d+)/m.exec(info);
  const major = Number(match?.[1] ?? 0);
  const minor = Number(match?.[2] ?? 0);
  const [sinceMajor, sinceMinor] = GETDEL_SINCE;
  return major > sinceMajor || (major === sinceMajor && minor >= sinceMinor) ? "getdel" : "script";
}

/**
 * A copy of the caller's bytes (they are small): the caller may zero its buffer as soon as the
 * call settles, even when it timed out with the command still queued in the client.
 */
function asBuffer(value: Uint8Array): Buffer {
  return Buffer.from(value);
}

function unavailable(err: unknown): EphemeralStoreUnavailableError {
  return err instanceof EphemeralStoreUnavailableError
    ? err
    : new EphemeralStoreUnavailableError(redisFailureReason(err));
}

function withDeadline<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new EphemeralStoreUnavailableError("timed out")), ms);
  });
  return Promise.race([work, deadline]).finally(() => clearTimeout(timer));
}
