import { randomBytes } from "node:crypto";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../src/config/config.js";
import type { Scope } from "../../src/domain/scopes.js";
import { auth, CARDS, expectProblem, keyIdOf, tokenizeBody } from "../support/api-fixtures.js";
import { DRIVERS } from "../support/databases.js";
import { closedPort, describeRedis, ManualClock, REDIS_URL, testPrefix } from "../support/redis.js";
import { dropRedisKeys } from "../support/redis-keys.js";
import type { TestVault } from "../support/vault-harness.js";
import { startTestVault } from "../support/vault-harness.js";

/** Limits are per route, not per store: PGlite is enough to drive them. */
const driver = DRIVERS[0] as (typeof DRIVERS)[number];
const WRITE: readonly Scope[] = ["tokens:write", "tokens:reveal"];
/** A bucket that does not refill within a test: exact counts. */
const NO_REFILL = "0.001";

let vault: TestVault | undefined;
afterEach(async () => {
  await vault?.close();
  vault = undefined;
});

/** A client address of its own for each call site: buckets never leak between tests or runs. */
function address(): string {
  const b = randomBytes(3);
  return `10.${b[0]}.${b[1]}.${b[2]}`;
}

async function open(env: Record<string, string>, clock?: ManualClock): Promise<TestVault> {
  vault = await startTestVault(driver, {
    env: { PAYVAULT_RATE_LIMITS: "on", PAYVAULT_AUTH_BACKOFF: "on", ...env },
    ...(clock === undefined ? {} : { clock }),
  });
  return vault;
}

function post(v: TestVault, key: string, ip: string, url = "/v1/tokens", payload?: object) {
  return v.app.inject({
    method: "POST",
    url,
    headers: auth(key),
    payload: payload ?? tokenizeBody(CARDS.visa),
    remoteAddress: ip,
  });
}

/** Outcomes of `n` tokenizations with `key` from `ip`: "ok" (201, or 200 for the same card) or the status. */
async function statuses(
  v: TestVault,
  key: string,
  ip: string,
  n: number,
): Promise<(number | "ok")[]> {
  const out: (number | "ok")[] = [];
  for (let i = 0; i < n; i++) {
    const { statusCode } = await post(v, key, ip);
    out.push(statusCode < 300 ? "ok" : statusCode);
  }
  return out;
}

describe("rate limits over HTTP", () => {
  it("limits each API key: capacity requests pass, the next is 429 with Retry-After and RateLimit fields", async () => {
    const v = await open({
      PAYVAULT_RATE_LIMIT_TOKENIZE: `3:${NO_REFILL}`,
      PAYVAULT_RATE_LIMIT_TOKENIZE_TENANT: "100:1",
      PAYVAULT_RATE_LIMIT_TOKENIZE_IP: "100:1",
    });
    const [a, b] = [await v.newKey(v.tenantId, WRITE), await v.newKey(v.tenantId, WRITE)];
    const ip = address();
    const first = await post(v, a, ip);
    expect(first.statusCode).toBeLessThan(300);
    expect(first.headers["ratelimit-policy"]).toBe('"tokenize.principal";q=3;w=3000');
    expect(first.headers.ratelimit).toMatch(/^"tokenize\.principal";r=2;t=\d+$/);
    expect(await statuses(v, a, ip, 3)).toEqual(["ok", "ok", 429]);
    const refused = await post(v, a, ip);
    const problem = expectProblem(refused, "RATE_LIMITED");
    expect(problem.code).toBe("RATE_LIMITED");
    expect(Number(refused.headers["retry-after"])).toBeGreaterThanOrEqual(999);
    expect(refused.headers.ratelimit).toBe(
      `"tokenize.principal";r=0;t=${refused.headers["retry-after"]}`,
    );
    expect(refused.headers["ratelimit-policy"]).toBe('"tokenize.principal";q=3;w=3000');
    // The key id (or the address) is never echoed back.
    expect(JSON.stringify(refused.headers)).not.toContain(keyIdOf(a));
    expect(JSON.stringify(refused.headers)).not.toContain(ip);
    // Another key of the same tenant has its own bucket.
    expect(await statuses(v, b, ip, 4)).toEqual(["ok", "ok", "ok", 429]);
  });

  it("limits each tenant across its keys, and leaves other tenants alone", async () => {
    const v = await open({
      PAYVAULT_RATE_LIMIT_TOKENIZE: "100:1",
      PAYVAULT_RATE_LIMIT_TOKENIZE_TENANT: `4:${NO_REFILL}`,
      PAYVAULT_RATE_LIMIT_TOKENIZE_IP: "100:1",
    });
    const [a, b] = [await v.newKey(v.tenantId, WRITE), await v.newKey(v.tenantId, WRITE)];
    const other = await v.newTenant(WRITE);
    expect(await statuses(v, a, address(), 2)).toEqual(["ok", "ok"]);
    expect(await statuses(v, b, address(), 3)).toEqual(["ok", "ok", 429]);
    const refused = await post(v, a, address());
    expectProblem(refused, "RATE_LIMITED");
    expect(refused.headers["ratelimit-policy"]).toBe('"tokenize.tenant";q=4;w=4000');
    expect(await statuses(v, other.key, address(), 4)).toEqual(["ok", "ok", "ok", "ok"]);
  });

  it("limits each client address across tenants; an IPv6 /64 is one address", async () => {
    const v = await open({
      PAYVAULT_RATE_LIMIT_TOKENIZE: "100:1",
      PAYVAULT_RATE_LIMIT_TOKENIZE_TENANT: "100:1",
      PAYVAULT_RATE_LIMIT_TOKENIZE_IP: `3:${NO_REFILL}`,
    });
    const one = await v.newTenant(WRITE);
    const two = await v.newTenant(WRITE);
    const ip = address();
    expect(await statuses(v, one.key, ip, 2)).toEqual(["ok", "ok"]);
    expect(await statuses(v, two.key, ip, 2)).toEqual(["ok", 429]);
    const refused = await post(v, two.key, ip);
    expect(refused.headers["ratelimit-policy"]).toBe('"tokenize.ip";q=3;w=3000');
    expect(await statuses(v, two.key, address(), 1)).toEqual(["ok"]);
    const prefix = `2001:db8:${randomBytes(2).toString("hex")}:1`;
    expect(await statuses(v, one.key, `${prefix}::1`, 2)).toEqual(["ok", "ok"]);
    expect(await statuses(v, two.key, `${prefix}:0:0:0:ffff`, 2)).toEqual(["ok", 429]);
  });

  it("a refused request takes nothing from the other buckets", async () => {
    const v = await open({
      PAYVAULT_RATE_LIMIT_TOKENIZE: "100:1",
      PAYVAULT_RATE_LIMIT_TOKENIZE_TENANT: `3:${NO_REFILL}`,
      PAYVAULT_RATE_LIMIT_TOKENIZE_IP: `1:${NO_REFILL}`,
    });
    const key = await v.newKey(v.tenantId, WRITE);
    const crowded = address();
    expect(await statuses(v, key, crowded, 5)).toEqual(["ok", 429, 429, 429, 429]);
    // Four refusals by the address bucket cost the tenant nothing: two of its three are left.
    expect(await statuses(v, key, address(), 1)).toEqual(["ok"]);
    expect(await statuses(v, key, address(), 1)).toEqual(["ok"]);
    expect(await statuses(v, key, address(), 1)).toEqual([429]);
  });

  it("limits reveal by its own class, and refills at the configured rate", async () => {
    const clock = new ManualClock(Date.now());
    const v = await open(
      { PAYVAULT_RATE_LIMIT_REVEAL: "2:1", PAYVAULT_RATE_LIMIT_REVEAL_TENANT: "100:1" },
      clock,
    );
    const key = await v.newKey(v.tenantId, WRITE);
    const ip = address();
    const token = (await post(v, key, ip)).json() as { id: string };
    const reveal = () =>
      post(v, key, ip, `/v1/tokens/${token.id}/reveal`, { purpose: "rate limit test" });
    const first = await reveal();
    expect(first.statusCode).toBe(200);
    expect(first.headers["ratelimit-policy"]).toMatch(/^"reveal\.(principal|ip)";q=2;w=2$/);
    expect((await reveal()).statusCode).toBe(200);
    const refused = await reveal();
    expectProblem(refused, "RATE_LIMITED");
    expect(refused.headers["retry-after"]).toBe("1");
    // Tokenize is another class: untouched by the reveals.
    expect((await post(v, key, ip)).statusCode).toBeLessThan(300);
    clock.advance(999);
    expect((await reveal()).statusCode).toBe(429);
    clock.advance(1);
    expect((await reveal()).statusCode).toBe(200);
    expect((await reveal()).statusCode).toBe(429);
  });

  it("routes without a class carry no RateLimit fields", async () => {
    const v = await open({ PAYVAULT_RATE_LIMIT_TOKENIZE: "5:1" });
    const key = await v.newKey(v.tenantId, ["tokens:write", "tokens:read"]);
    const ip = address();
    const token = (await post(v, key, ip)).json() as { id: string };
    const read = await v.app.inject({
      method: "GET",
      url: `/v1/tokens/${token.id}`,
      headers: auth(key),
      remoteAddress: ip,
    });
    expect(read.statusCode).toBe(200);
    expect(read.headers.ratelimit).toBeUndefined();
    expect(read.headers["ratelimit-policy"]).toBeUndefined();
  });
});

describe("backoff of failed authentications over HTTP", () => {
  /** A well-formed API key of the same id with a wrong secret. */
  function wrongSecret(key: string): string {
    return `${key.slice(0, key.lastIndexOf("_"))}_${"A".repeat(43)}`;
  }

  it("backs off an address's failures exponentially; a valid key from it is never held back", async () => {
    const clock = new ManualClock(Date.now());
    const v = await open({}, clock);
    const key = await v.newKey(v.tenantId, WRITE);
    const ip = address();
    const garbled = "pv_live_garbled";
    const waits: string[] = [];
    for (let round = 0; round < 4; round++) {
      expectProblem(await post(v, garbled, ip), "AUTH_INVALID");
      const blocked = await post(v, garbled, ip);
      expectProblem(blocked, "AUTH_BACKOFF");
      waits.push(String(blocked.headers["retry-after"]));
      // A valid key from the same address (a NAT, a shared egress) keeps working.
      expect((await post(v, key, ip)).statusCode).toBeLessThan(300);
      clock.advance(Number(blocked.headers["retry-after"]) * 1000);
    }
    expect(waits).toEqual(["1", "2", "4", "8"]);
    // Each refusal in the wait is an invalid access attempt in the audit trail (PCI DSS 10.2.1.4).
    const { rows } = await v.core.db.query<{ n: string }>(
      `SELECT count(*) AS n FROM audit_events
        WHERE action = 'auth.failure' AND details->>'reason' = 'AUTH_BACKOFF' AND details->>'ip' = $1`,
      [ip],
    );
    expect(Number(rows[0]?.n)).toBe(4);
  });

  it("backs off wrong secrets for a key id from any address, while the right secret keeps working", async () => {
    const clock = new ManualClock(Date.now());
    const v = await open({}, clock);
    const key = await v.newKey(v.tenantId, WRITE);
    const waits: string[] = [];
    for (let round = 0; round < 3; round++) {
      expectProblem(await post(v, wrongSecret(key), address()), "AUTH_INVALID");
      // Another address, the same key id: its wait applies, not counted again.
      const blocked = await post(v, wrongSecret(key), address());
      expectProblem(blocked, "AUTH_BACKOFF");
      waits.push(String(blocked.headers["retry-after"]));
      // Whoever knows the key id cannot lock its holder out.
      expect((await post(v, key, address())).statusCode).toBeLessThan(300);
      clock.advance(Number(blocked.headers["retry-after"]) * 1000);
    }
    expect(waits).toEqual(["1", "2", "4"]);
  });

  it("the backoff never writes a key id or an address to the log", async () => {
    const v = await open({});
    const key = await v.newKey(v.tenantId, WRITE);
    const ip = address();
    await post(v, wrongSecret(key), ip);
    await post(v, wrongSecret(key), ip);
    expect(v.logs.text).not.toContain(ip);
  });
});

describe("rate limits when their Redis is down", () => {
  async function openDown(env: Record<string, string>) {
    const port = await closedPort();
    return open({ PAYVAULT_RATE_LIMIT_REDIS_URL: `redis://127.0.0.1:${port}`, ...env });
  }

  it("local: this node's buckets apply; closed: 503; each outage is logged without keys", async () => {
    const v = await openDown({
      PAYVAULT_RATE_LIMIT_TOKENIZE: `2:${NO_REFILL}:local`,
      PAYVAULT_RATE_LIMIT_REVEAL: "2:1:closed",
    });
    const key = await v.newKey(v.tenantId, WRITE);
    const ip = address();
    const made = await post(v, key, ip);
    expect(made.statusCode).toBeLessThan(300);
    expect(made.headers["ratelimit-policy"]).toBe('"tokenize.principal";q=2;w=2000');
    expect(await statuses(v, key, ip, 2)).toEqual(["ok", 429]);
    const { id } = made.json() as { id: string };
    const reveal = await post(v, key, ip, `/v1/tokens/${id}/reveal`, { purpose: "outage test" });
    expectProblem(reveal, "RATE_LIMIT_UNAVAILABLE");
    const outages = v.logs.lines.filter((l) => l.includes("rate limit store unavailable"));
    expect(outages.map((l) => JSON.parse(l).route_class).sort()).toEqual(["reveal", "tokenize"]);
    expect(outages.join("\n")).toContain('"mode":"local"');
    expect(outages.join("\n")).toContain('"mode":"closed"');
    // The request log names the key (that is its job); the outage reports name no bucket.
    expect(outages.join("\n")).not.toContain(keyIdOf(key));
    expect(outages.join("\n")).not.toContain(v.tenantId);
    expect(v.logs.text).not.toContain(ip);
  });

  it("open: serves unchecked; the backoff falls back to this node", async () => {
    const v = await openDown({ PAYVAULT_RATE_LIMIT_TOKENIZE: `1:${NO_REFILL}:open` });
    const key = await v.newKey(v.tenantId, WRITE);
    const ip = address();
    const results = await Promise.all([1, 2, 3].map(() => post(v, key, ip)));
    expect(results.map((r) => r.statusCode < 300)).toEqual([true, true, true]);
    expect(results[0]?.headers.ratelimit).toBeUndefined();
    expectProblem(await post(v, "pv_live_garbled", ip), "AUTH_INVALID");
    expectProblem(await post(v, "pv_live_garbled", ip), "AUTH_BACKOFF");
    expect(v.logs.text).toContain("auth backoff store unavailable");
  });
});

describeRedis("rate limits over HTTP through Redis", () => {
  const prefix = testPrefix();
  afterAll(() => dropRedisKeys(prefix));
  it("takes the buckets in Redis: exact counts, per key, per tenant", async () => {
    const v = await open({
      PAYVAULT_RATE_LIMIT_REDIS_URL: REDIS_URL,
      PAYVAULT_RATE_LIMIT_PREFIX: prefix,
      PAYVAULT_RATE_LIMIT_TOKENIZE: `3:${NO_REFILL}`,
      PAYVAULT_RATE_LIMIT_TOKENIZE_TENANT: `5:${NO_REFILL}`,
    });
    const [a, b] = [await v.newKey(v.tenantId, WRITE), await v.newKey(v.tenantId, WRITE)];
    expect(await statuses(v, a, address(), 4)).toEqual(["ok", "ok", "ok", 429]);
    expect(await statuses(v, b, address(), 3)).toEqual(["ok", "ok", 429]);
    expect(v.logs.text).not.toContain("unavailable");
  });

  it("shares the backoff through Redis", async () => {
    const v = await open({
      PAYVAULT_RATE_LIMIT_REDIS_URL: REDIS_URL,
      PAYVAULT_RATE_LIMIT_PREFIX: prefix,
    });
    const ip = address();
    expectProblem(await post(v, "pv_live_garbled", ip), "AUTH_INVALID");
    const blocked = await post(v, "pv_live_garbled", ip);
    expectProblem(blocked, "AUTH_BACKOFF");
    expect(blocked.headers["retry-after"]).toBe("1");
  });
});

describe("rate limit configuration", () => {
  const env = (extra: Record<string, string>) =>
    loadConfig({ PAYVAULT_DATA_DIR: "/tmp/x", ...extra });

  it("reads capacity:refill[:mode] per class and scope, and off switches", () => {
    const config = env({
      PAYVAULT_RATE_LIMIT_TOKENIZE: "2000:1000.5:open",
      PAYVAULT_RATE_LIMIT_REVEAL_IP: "7:0.5",
      PAYVAULT_AUTH_BACKOFF_BASE_MS: "500",
    });
    expect(config.rateLimits.policies?.tokenize).toMatchObject({
      capacity: 2000,
      refillPerSecond: 1000.5,
      onUnavailable: "open",
    });
    expect(config.rateLimits.policies?.reveal.perIp).toEqual({ capacity: 7, refillPerSecond: 0.5 });
    expect(config.rateLimits.backoff?.baseMs).toBe(500);
    expect(env({ PAYVAULT_RATE_LIMITS: "off" }).rateLimits.policies).toBeUndefined();
    expect(env({ PAYVAULT_AUTH_BACKOFF: "off" }).rateLimits.backoff).toBeUndefined();
  });

  it("refuses what it cannot read, naming the variable", () => {
    for (const [name, value] of [
      ["PAYVAULT_RATE_LIMIT_TOKENIZE", "100"],
      ["PAYVAULT_RATE_LIMIT_TOKENIZE", "0:1"],
      ["PAYVAULT_RATE_LIMIT_REVEAL", "10:1:sometimes"],
      ["PAYVAULT_RATE_LIMIT_AUTH_IP", "10:1:open"],
      ["PAYVAULT_RATE_LIMITS", "maybe"],
      ["PAYVAULT_AUTH_BACKOFF_MAX_MS", "-1"],
    ] as const) {
      expect(() => env({ [name]: value }), `${name}=${value}`).toThrow(ConfigError);
      expect(() => env({ [name]: value })).toThrow(name);
    }
  });
});
