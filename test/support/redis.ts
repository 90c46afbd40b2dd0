import { randomBytes } from "node:crypto";
import type { Server, Socket } from "node:net";
import { connect, createServer } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { Redis } from "ioredis";
import { describe } from "vitest";
import type { EphemeralStore } from "../../src/ephemeral/ephemeral-store.js";
import { MemoryEphemeralStore } from "../../src/ephemeral/memory-ephemeral-store.js";
import type { TakeMode } from "../../src/ephemeral/redis-ephemeral-store.js";
import { RedisEphemeralStore } from "../../src/ephemeral/redis-ephemeral-store.js";
import type { Clock } from "../../src/services/clock.js";
import { systemClock } from "../../src/services/clock.js";

/**
 * The Redis suites run against the machine's Redis: REDIS_URL when set, else 127.0.0.1:6379.
 * Like the PostgreSQL suites (databases.ts), a developer's run without a Redis is told plainly
 * that they were SKIPPED; when REDIS_URL is set, or in CI (.ci/run exports CI), they always run
 * and an unreachable Redis fails them.
 */
export const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";

const REDIS_REQUIRED = process.env.REDIS_URL !== undefined || process.env.CI !== undefined;

async function reachable(url: string): Promise<boolean> {
  const client = new Redis(url, {
    lazyConnect: true,
    connectTimeout: 500,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    retryStrategy: () => null,
  });
  client.on("error", () => undefined);
  try {
    await client.connect();
    return (await client.ping()) === "PONG";
  } catch {
    return false;
  } finally {
    client.disconnect();
  }
}

const REDIS_RUNS = REDIS_REQUIRED || (await reachable(REDIS_URL));

if (!REDIS_RUNS) {
  process.stdout.write(
    `\n[payvault tests] no Redis at ${new URL(REDIS_URL).host}: the Redis suites are SKIPPED.\n` +
      "[payvault tests] To run them: start redis-server, or set REDIS_URL (CI always runs them)\n\n",
  );
}

/** `describe` for suites that need the Redis; skipped (and said so) when there is none locally. */
export const describeRedis: SuiteFn = describe.skipIf(!REDIS_RUNS);

/** How a suite is declared: `describe`, or `describeRedis` for the Redis adapter. */
export type SuiteFn = (name: string, body: () => void) => void;

/** A fresh key prefix per run and suite, so parallel runs never see each other's keys. */
export function testPrefix(): string {
  return `pvtest:${randomBytes(8).toString("hex")}:`;
}

/** A plain client, apart from the store under test: it reads what the store really wrote. */
export function rawClient(): Redis {
  const client = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  client.on("error", () => undefined);
  return client;
}

/** Every key under the prefix (SCAN, never KEYS) with its raw bytes. */
export async function rawEntries(client: Redis, prefix: string): Promise<Map<string, Buffer>> {
  const entries = new Map<string, Buffer>();
  let cursor = "0";
  do {
    const [next, keys] = await client.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 200);
    cursor = next;
    for (const key of keys) {
      const value = await client.getBuffer(key);
      if (value !== null) entries.set(key, value);
    }
  } while (cursor !== "0");
  return entries;
}

/** Deletes every key under the prefix: each suite cleans up after itself. */
export async function removeKeys(client: Redis, prefix: string): Promise<void> {
  const keys = [...(await rawEntries(client, prefix)).keys()];
  if (keys.length > 0) await client.del(...keys);
}

function listen(server: Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      if (address === null || typeof address === "string") reject(new Error("no port"));
      else resolve(address.port);
    });
  });
}

function closeServer(server: Server, sockets: Set<Socket>): Promise<void> {
  for (const socket of sockets) socket.destroy();
  return new Promise((resolve) => server.close(() => resolve()));
}

/** A port nothing listens on (bound, then released): connecting is refused. */
export async function closedPort(): Promise<number> {
  const server = createServer();
  const port = await listen(server);
  await closeServer(server, new Set());
  return port;
}

/** A listener that accepts connections and never answers: a hung Redis. */
export async function silentServer(): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on("error", () => undefined);
  });
  const port = await listen(server);
  return { port, close: () => closeServer(server, sockets) };
}

/**
 * A TCP relay in front of the real Redis, which the test can cut: Redis "dies" for the store
 * under test without touching the Redis other suites use.
 */
export async function redisRelay(): Promise<{ url: string; cut(): Promise<void> }> {
  const target = new URL(REDIS_URL);
  const sockets = new Set<Socket>();
  const server = createServer((inbound) => {
    const outbound = connect(Number(target.port || 6379), target.hostname);
    sockets.add(inbound);
    sockets.add(outbound);
    inbound.on("error", () => outbound.destroy());
    outbound.on("error", () => inbound.destroy());
    inbound.pipe(outbound).pipe(inbound);
  });
  const port = await listen(server);
  const url = new URL(REDIS_URL);
  url.hostname = "127.0.0.1";
  url.port = String(port);
  return { url: url.toString(), cut: () => closeServer(server, sockets) };
}

/** A clock the test moves by hand: the memory adapter's TTLs pass without sleeping. */
export class ManualClock implements Clock {
  constructor(private ms = Date.UTC(2030, 0, 1)) {}
  now(): Date {
    return new Date(this.ms);
  }
  advance(ms: number): void {
    this.ms += ms;
  }
}

/** One adapter under test, with a view of what it really holds. */
export interface StoreHarness {
  readonly store: EphemeralStore;
  readonly prefix: string;
  /** The clock the adapter expires by (callers computing TTLs use it too). */
  readonly clock: Clock;
  /** Every stored entry under the prefix, by full key name, as raw bytes. */
  raw(): Promise<Map<string, Uint8Array>>;
  /** Lets `ms` pass for the store: moves the memory clock, or waits for Redis's own. */
  elapse(ms: number): Promise<void>;
  /** Closes the store and removes whatever it left behind. */
  close(): Promise<void>;
}

export interface StoreAdapter {
  readonly name: "memory" | "redis";
  readonly describe: SuiteFn;
  /** TTLs the tests use: long for the memory clock, short for real time. */
  readonly shortTtlMs: number;
  open(options?: { takeMode?: TakeMode }): Promise<StoreHarness>;
}

export const MEMORY_ADAPTER: StoreAdapter = {
  name: "memory",
  describe,
  shortTtlMs: 60_000,
  async open() {
    const clock = new ManualClock();
    const prefix = testPrefix();
    const store = new MemoryEphemeralStore({ prefix, clock });
    return {
      store,
      prefix,
      clock,
      raw: async () => new Map(store.inspectRaw()),
      elapse: async (ms) => clock.advance(ms),
      close: () => store.close(),
    };
  },
};

export const REDIS_ADAPTER: StoreAdapter = {
  name: "redis",
  describe: describeRedis,
  // Short enough that the suite waits little, long enough that "held until then" checks keep a
  // few hundred ms of headroom on a loaded machine.
  shortTtlMs: 600,
  async open(options = {}) {
    const prefix = testPrefix();
    const store = await RedisEphemeralStore.connect({ url: REDIS_URL, prefix, ...options });
    const client = rawClient();
    return {
      store,
      prefix,
      clock: systemClock,
      raw: () => rawEntries(client, prefix),
      // Redis expires on access by its own millisecond clock: once the time has passed, the key
      // is gone for every reader, however loaded this machine is.
      elapse: (ms) => sleep(ms + 10),
      async close() {
        await store.close();
        await removeKeys(client, prefix);
        await client.quit();
      },
    };
  },
};

export const STORE_ADAPTERS: readonly StoreAdapter[] = [MEMORY_ADAPTER, REDIS_ADAPTER];
