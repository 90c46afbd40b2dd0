import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CliResult } from "../support/cli-runner.js";
import { runCli } from "../support/cli-runner.js";

const SLOW = 60_000;

interface KeyRow {
  id: string;
  scopes: string;
  expires_at: string;
  allowed_ips: string;
  rotated_to: string;
  api_key?: string;
}

function ok(result: CliResult): CliResult {
  expect(result.code, `stdout:\n${result.stdout}\nstderr:\n${result.stderr}`).toBe(0);
  return result;
}

describe("payvault apikeys: roles, expiry, client ranges and rotation", () => {
  let dataDir: string;
  const cli = (...args: string[]) => runCli(args, { dataDir });
  let tenantId: string;

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), "payvault-cli-keys-"));
    ok(await cli("migrate"));
    tenantId = (
      JSON.parse(ok(await cli("tenants", "create", "--name", "keys", "--json")).stdout) as {
        id: string;
      }[]
    )[0]?.id as string;
  }, SLOW);
  afterAll(async () => rm(dataDir, { recursive: true, force: true }));

  it(
    "creates a key from roles with an expiry and ranges, then rotates it with an overlap",
    async () => {
      const expires = new Date(Date.now() + 30 * 86_400_000).toISOString();
      const [created] = JSON.parse(
        ok(
          await cli(
            "apikeys",
            "create",
            "--tenant",
            tenantId,
            "--roles",
            "revealer",
            "--expires-at",
            expires,
            "--allowed-ips",
            "10.0.0.0/8,2001:db8::1",
            "--json",
          ),
        ).stdout,
      ) as KeyRow[];
      expect(created).toMatchObject({
        scopes: "tokens:read,tokens:reveal",
        expires_at: expires,
        allowed_ips: "10.0.0.0/8,2001:db8::1/128",
      });
      const rotated = ok(
        await cli("apikeys", "rotate", created?.id as string, "--overlap-seconds", "600", "--json"),
      );
      const [next] = JSON.parse(rotated.stdout) as KeyRow[];
      expect(next?.api_key).toMatch(/^pv_live_/);
      expect(next?.api_key).not.toBe(created?.api_key);
      expect(rotated.stderr).toMatch(new RegExp(`${created?.id} keeps working until`));
      const listed = JSON.parse(ok(await cli("apikeys", "list", "--json")).stdout) as KeyRow[];
      expect(listed.find((k) => k.id === created?.id)?.rotated_to).toBe(next?.id);
      expect(JSON.stringify(listed)).not.toMatch(/pv_(live|test)_/);
      const again = await cli("apikeys", "rotate", created?.id as string);
      expect(again.code).toBe(2);
      expect(again.stderr).toMatch(/Only a current API key can be rotated/);
    },
    SLOW,
  );

  it(
    "users rotate-signing-key replaces the access-token key; the old one stays for the overlap",
    async () => {
      const rotated = ok(await cli("users", "rotate-signing-key"));
      expect(rotated.stdout).toMatch(/^Created \S+; retired /);
      const keys = JSON.parse(ok(await cli("users", "signing-keys", "--json")).stdout) as {
        kid: string;
        alg: string;
        retired_at: string;
      }[];
      expect(keys.length).toBeGreaterThanOrEqual(1);
      expect(keys.every((key) => key.alg === "EdDSA")).toBe(true);
      expect(keys.filter((key) => key.retired_at === "")).toHaveLength(1);
    },
    SLOW,
  );

  it(
    "refuses unknown roles, past expiries and bad ranges",
    async () => {
      for (const args of [
        ["--roles", "superuser"],
        ["--scopes", "tokens:read", "--expires-at", "2001-01-01T00:00:00Z"],
        ["--scopes", "tokens:read", "--allowed-ips", "10.0.0.0/40"],
      ]) {
        const res = await cli("apikeys", "create", "--tenant", tenantId, ...args);
        expect(res.code, res.stderr).toBe(2);
        expect(res.stdout).not.toMatch(/pv_(live|test)_/);
      }
    },
    SLOW,
  );
});
