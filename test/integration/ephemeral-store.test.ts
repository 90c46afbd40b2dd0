import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import {
  DEFAULT_EPHEMERAL_PREFIX,
  EphemeralStoreUnavailableError,
} from "../../src/ephemeral/ephemeral-store.js";
import { MemoryEphemeralStore } from "../../src/ephemeral/memory-ephemeral-store.js";
import { openEphemeralStore } from "../../src/ephemeral/open-ephemeral-store.js";
import { RedisEphemeralStore } from "../../src/ephemeral/redis-ephemeral-store.js";
import type { StoreAdapter, StoreHarness } from "../support/redis.js";
import {
  closedPort,
  describeRedis,
  ManualClock,
  REDIS_ADAPTER,
  REDIS_URL,
  rawClient,
  redisRelay,
  removeKeys,
  STORE_ADAPTERS,
  silentServer,
  testPrefix,
} from "../support/redis.js";

const bytes = (...values: number[]) => Uint8Array.from(values);

/** The same contract for every adapter (STYLE.md: one adapter suite on every backend). */
function contract(adapter: StoreAdapter, options: { takeMode?: "script" } = {}): void {
  let h: StoreHarness;
  beforeEach(async () => {
    h = await adapter.open(options);
  });
  afterEach(async () => {
    await h.close();
  });

  it("puts once, hands the value out once, and is empty after", async () => {
    expect(await h.store.putIfAbsent("a", bytes(1, 2, 3), adapter.shortTtlMs)).toBe(true);
    expect(await h.store.putIfAbsent("a", bytes(9), adapter.shortTtlMs)).toBe(false);
    expect(Buffer.from((await h.store.take("a")) ?? [])).toEqual(Buffer.from([1, 2, 3]));
    expect(await h.store.take("a")).toBeUndefined();
    expect(await h.store.putIfAbsent("a", bytes(4), adapter.shortTtlMs)).toBe(true);
    expect([...(await h.raw()).keys()]).toEqual([`${h.prefix}a`]);
  });

  it("puts and replaces, deletes, and takes nothing that was never put", async () => {
    await h.store.put("b", bytes(1), adapter.shortTtlMs);
    await h.store.put("b", bytes(2), adapter.shortTtlMs);
    expect(Buffer.from((await h.store.take("b")) ?? [])).toEqual(Buffer.from([2]));
    await h.store.put("c", bytes(3), adapter.shortTtlMs);
    await h.store.delete("c");
    await h.store.delete("never-put");
    expect(await h.store.take("c")).toBeUndefined();
    expect(await h.store.take("never-put")).toBeUndefined();
    expect((await h.raw()).size).toBe(0);
  });

  it("keeps every key under its prefix, with the bytes exactly as given", async () => {
    const value = Uint8Array.from({ length: 256 }, (_, i) => i);
    await h.store.put("x:y", value, adapter.shortTtlMs);
    const raw = await h.raw();
    expect([...raw.keys()]).toEqual([`${h.prefix}x:y`]);
    expect(Buffer.from(raw.get(`${h.prefix}x:y`) ?? [])).toEqual(Buffer.from(value));
  });

  it("keeps its own copy: the caller may zero the buffer it passed", async () => {
    const value = bytes(7, 7, 7);
    await h.store.putIfAbsent("copy", value, adapter.shortTtlMs);
    value.fill(0);
    expect(Buffer.from((await h.store.take("copy")) ?? [])).toEqual(Buffer.from([7, 7, 7]));
  });

  it("forgets an entry after its TTL, and holds it until then", async () => {
    await h.store.putIfAbsent("ttl", bytes(1), adapter.shortTtlMs);
    await h.elapse(adapter.shortTtlMs / 2);
    expect(await h.store.putIfAbsent("ttl", bytes(2), adapter.shortTtlMs)).toBe(false);
    await h.elapse(adapter.shortTtlMs / 2);
    expect(await h.store.take("ttl")).toBeUndefined();
    expect(await h.store.putIfAbsent("ttl", bytes(3), adapter.shortTtlMs)).toBe(true);
    expect(Buffer.from((await h.store.take("ttl")) ?? [])).toEqual(Buffer.from([3]));
  });

  it("refuses malformed keys and TTLs before reaching the store", async () => {
    for (const ttl of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      await expect(h.store.putIfAbsent("k", bytes(1), ttl)).rejects.toThrow(RangeError);
      await expect(h.store.put("k", bytes(1), ttl)).rejects.toThrow(RangeError);
    }
    for (const key of ["", "has space", "new\nline", "é", "k".repeat(513)]) {
      await expect(h.store.putIfAbsent(key, bytes(1), 1_000)).rejects.toThrow(TypeError);
      await expect(h.store.take(key)).rejects.toThrow(TypeError);
      await expect(h.store.delete(key)).rejects.toThrow(TypeError);
    }
    expect((await h.raw()).size).toBe(0);
  });

  it("counts: one more per call, every concurrent call a distinct number, gone after its TTL", async () => {
    const counts = await Promise.all(
      Array.from({ length: 20 }, () => h.store.count("hits", adapter.shortTtlMs)),
    );
    expect([...counts].sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    await h.elapse(adapter.shortTtlMs / 2);
    // A later count does not extend the counter's life.
    expect(await h.store.count("hits", adapter.shortTtlMs)).toBe(21);
    await h.elapse(adapter.shortTtlMs / 2);
    expect(await h.store.count("hits", adapter.shortTtlMs)).toBe(1);
  });

  it("lets exactly one of many concurrent callers put, and exactly one take", async () => {
    const puts = await Promise.all(
      Array.from({ length: 20 }, (_, i) => h.store.putIfAbsent("race", bytes(i), 60_000)),
    );
    expect(puts.filter(Boolean)).toHaveLength(1);
    const winner = puts.indexOf(true);
    const takes = await Promise.all(Array.from({ length: 20 }, () => h.store.take("race")));
    const got = takes.filter((v) => v !== undefined);
    expect(got).toHaveLength(1);
    expect(Buffer.from(got[0] ?? [])).toEqual(Buffer.from([winner]));
  });
}

for (const adapter of STORE_ADAPTERS) {
  adapter.describe(`EphemeralStore contract: ${adapter.name}`, () => contract(adapter));
}

describeRedis("EphemeralStore contract: redis with the Lua take (servers before 6.2)", () => {
  contract(REDIS_ADAPTER, { takeMode: "script" });
});

describe("MemoryEphemeralStore", () => {
  it("treats an expired entry as absent on read, before any sweep, and zeroes it", async () => {
    const clock = new ManualClock();
    const store = new MemoryEphemeralStore({ clock, sweepIntervalMs: 3_600_000 });
    await store.put("k", bytes(5, 5), 1_000);
    const held = store.inspectRaw().get(`${DEFAULT_EPHEMERAL_PREFIX}k`);
    clock.advance(999);
    expect(held).toEqual(bytes(5, 5));
    clock.advance(1);
    expect(await store.take("k")).toBeUndefined();
    expect(held).toEqual(bytes(0, 0));
    expect(store.inspectRaw().size).toBe(0);
    await store.close();
  });

  it("sweeps expired entries on its timer and zeroes them", async () => {
    const clock = new ManualClock();
    const store = new MemoryEphemeralStore({ clock, sweepIntervalMs: 20 });
    await store.put("old", bytes(1, 1), 1_000);
    await store.put("young", bytes(2, 2), 10_000);
    const old = store.inspectRaw().get(`${DEFAULT_EPHEMERAL_PREFIX}old`);
    clock.advance(5_000);
    await expect.poll(() => store.inspectRaw().size).toBe(1);
    expect(old).toEqual(bytes(0, 0));
    expect([...store.inspectRaw().keys()]).toEqual([`${DEFAULT_EPHEMERAL_PREFIX}young`]);
    await store.close();
  });

  it("zeroes its copy when it hands a value out, deletes, replaces or closes", async () => {
    const store = new MemoryEphemeralStore({ prefix: "p:" });
    const held = (key: string) => store.inspectRaw().get(`p:${key}`) as Uint8Array;
    await store.put("taken", bytes(1, 2), 60_000);
    const taken = held("taken");
    const out = await store.take("taken");
    expect(out).toEqual(bytes(1, 2));
    expect(taken).toEqual(bytes(0, 0));

    await store.put("deleted", bytes(3), 60_000);
    const deleted = held("deleted");
    await store.delete("deleted");
    expect(deleted).toEqual(bytes(0));

    await store.put("replaced", bytes(4), 60_000);
    const replaced = held("replaced");
    await store.put("replaced", bytes(5), 60_000);
    expect(replaced).toEqual(bytes(0));

    const open = held("replaced");
    await store.close();
    expect(open).toEqual(bytes(0));
    await expect(store.take("replaced")).rejects.toThrow(EphemeralStoreUnavailableError);
    await expect(store.put("x", bytes(1), 1_000)).rejects.toThrow(EphemeralStoreUnavailableError);
  });

  it("refuses new entries when full instead of evicting live ones", async () => {
    const clock = new ManualClock();
    const store = new MemoryEphemeralStore({ clock, maxEntries: 2 });
    await store.putIfAbsent("a", bytes(1), 1_000);
    await store.putIfAbsent("b", bytes(2), 5_000);
    await expect(store.putIfAbsent("c", bytes(3), 1_000)).rejects.toThrow(
      EphemeralStoreUnavailableError,
    );
    expect(store.inspectRaw().size).toBe(2);
    clock.advance(1_000);
    expect(await store.putIfAbsent("c", bytes(3), 1_000)).toBe(true);
    expect(await store.take("b")).toEqual(bytes(2));
    await store.close();
  });
});

describe("openEphemeralStore", () => {
  it("opens the memory store when no Redis URL is configured", async () => {
    const store = await openEphemeralStore({ redisUrl: undefined });
    expect(store).toBeInstanceOf(MemoryEphemeralStore);
    expect((store as MemoryEphemeralStore).prefix).toBe("payvault:");
    await store.close();
  });

  describeRedis("with REDIS_URL", () => {
    it("opens the Redis store under the configured prefix", async () => {
      const prefix = testPrefix();
      const store = await openEphemeralStore({ redisUrl: REDIS_URL, prefix });
      expect(store).toBeInstanceOf(RedisEphemeralStore);
      expect((store as RedisEphemeralStore).prefix).toBe(prefix);
      await store.put("k", bytes(1), 1_000);
      expect(await store.take("k")).toEqual(Buffer.from([1]));
      await store.close();
    });
  });
});

describeRedis("RedisEphemeralStore against the machine's Redis", () => {
  const client = rawClient();
  const prefix = testPrefix();
  afterAll(async () => {
    await removeKeys(client, prefix);
    await client.quit();
  });

  it("uses GETDEL when the server has it (6.2+) and the Lua script otherwise", async () => {
    const version = /^redis_version:(\d+)\.(\d+)/m.exec(await client.info("server"));
    const [major, minor] = [Number(version?.[1]), Number(version?.[2])];
    const store = await RedisEphemeralStore.connect({ url: REDIS_URL, prefix });
    expect(store.takeMode).toBe(major > 6 || (major === 6 && minor >= 2) ? "getdel" : "script");
    await store.close();
  });

  it("writes SET … PX … NX: Redis holds the key with a millisecond TTL", async () => {
    const store = await RedisEphemeralStore.connect({ url: REDIS_URL, prefix });
    await store.putIfAbsent("pttl", bytes(1), 90_000);
    const pttl = await client.pttl(`${prefix}pttl`);
    expect(pttl).toBeGreaterThan(85_000);
    expect(pttl).toBeLessThanOrEqual(90_000);
    await store.close();
  });
});

describeRedis("RedisEphemeralStore when Redis is dead", () => {
  /** Fails fast: well inside the 2 s the brief allows, never a hang. */
  async function failsFast(work: () => Promise<unknown>): Promise<EphemeralStoreUnavailableError> {
    const started = performance.now();
    const err = await work().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(performance.now() - started).toBeLessThan(2_000);
    expect(err).toBeInstanceOf(EphemeralStoreUnavailableError);
    return err as EphemeralStoreUnavailableError;
  }

  it("refuses to open on a closed port", async () => {
    const port = await closedPort();
    const err = await failsFast(() =>
      RedisEphemeralStore.connect({ url: `redis://:hunter2@127.0.0.1:${port}` }),
    );
    expect(err.message).not.toContain("hunter2");
    expect(err.message).not.toContain(String(port));
  });

  it("refuses to open against a server that never answers", async () => {
    const silent = await silentServer();
    try {
      await failsFast(() =>
        RedisEphemeralStore.connect({ url: `redis://127.0.0.1:${silent.port}` }),
      );
    } finally {
      await silent.close();
    }
  });

  describe("after it was up", () => {
    let store: RedisEphemeralStore;
    let cut: () => Promise<void>;
    const prefix = testPrefix();
    const client = rawClient();
    beforeAll(async () => {
      const relay = await redisRelay();
      cut = relay.cut;
      store = await RedisEphemeralStore.connect({ url: relay.url, prefix });
      await store.put("before", bytes(1), 60_000);
      await cut();
    });
    afterAll(async () => {
      await store.close();
      await removeKeys(client, prefix);
      await client.quit();
    });

    it("fails every operation fast with EphemeralStoreUnavailableError", async () => {
      const secret = Buffer.from("secret-value-bytes");
      for (const op of [
        () => store.putIfAbsent("k", secret, 1_000),
        () => store.put("k", secret, 1_000),
        () => store.take("before"),
        () => store.delete("before"),
      ]) {
        const err = await failsFast(op);
        expect(err.message).not.toContain("secret-value-bytes");
        expect(err.message).not.toContain(prefix);
        expect(err.cause).toBeUndefined();
      }
    });

    it("closes without hanging", async () => {
      const started = performance.now();
      await store.close();
      expect(performance.now() - started).toBeLessThan(2_000);
    });
  });
});
