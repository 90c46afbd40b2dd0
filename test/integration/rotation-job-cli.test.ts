import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Core } from "../../src/app/core.js";
import { openCore } from "../../src/app/core.js";
import { loadConfig } from "../../src/config/config.js";
import type { Principal } from "../../src/services/api-keys.js";
import { CARDS, cardOf } from "../support/api-fixtures.js";
import { runCli, startCli } from "../support/cli-runner.js";
import { cliStoreEnv } from "../support/cli-schema.js";
import { DRIVERS } from "../support/databases.js";

const SLOW = 240_000;
const DAY_MS = 86_400_000;
const TOKENS = 400;
const NUMBERS = Object.values(CARDS);
const ARGS = ["keys", "rotate", "--dek", "--purpose", "pan", "--batch-size", "5"];
/** The non-TTY progress line (src/cli/progress.ts). */
const PROGRESS_LINE = /^re-encrypting tokens (\d{1,3})% (\d+)\/(\d+) \((\d+)\/s\)$/;

interface Expected {
  readonly number: string;
  readonly expMonth: number;
}

interface JobRow {
  id: string;
  state: string;
  done: number;
  total: number;
}

function progressLines(stderr: string): { percent: number; done: number; total: number }[] {
  return stderr
    .split("\n")
    .filter((line) => line.startsWith("re-encrypting tokens"))
    .map((line) => {
      const match = PROGRESS_LINE.exec(line);
      expect(match, `progress line ${JSON.stringify(line)}`).not.toBeNull();
      const [, percent, done, total] = (match as RegExpExecArray).map(Number);
      return { percent: percent as number, done: done as number, total: total as number };
    });
}

for (const driver of DRIVERS) {
  describe(`payvault keys rotate --dek on ${driver.name}, killed and resumed`, () => {
    let dataDir: string;
    let store: Awaited<ReturnType<typeof cliStoreEnv>>;
    let secret: string;
    const expected = new Map<string, Expected>();

    const open = (): Promise<Core> =>
      openCore(loadConfig({ PAYVAULT_DATA_DIR: dataDir, ...store.env }, dataDir));

    async function withCore<T>(work: (core: Core) => Promise<T>): Promise<T> {
      const core = await open();
      try {
        return await work(core);
      } finally {
        await core.close();
      }
    }

    async function principalOf(core: Core): Promise<Principal> {
      const auth = await core.apiKeys.authenticate(secret);
      if (!auth.ok) throw new Error("the test key does not authenticate");
      return auth.principal;
    }

    async function jobs(core: Core): Promise<JobRow[]> {
      const { rows } = await core.db.query<JobRow>(
        "SELECT id, state, done::int AS done, total::int AS total FROM key_rotation_jobs",
      );
      return rows;
    }

    beforeAll(async () => {
      dataDir = await mkdtemp(join(tmpdir(), "payvault-rotate-cli-"));
      store = await cliStoreEnv(driver.name);
      // A few hundred tokens in several epochs, made in this process; closing the core
      // releases the PGlite lock for the CLI.
      await withCore(async (core) => {
        const tenant = await core.tenants.create("rotation-cli", "test");
        secret = (
          await core.apiKeys.create({
            tenantId: tenant.id,
            environment: "live",
            name: "rotation-cli",
            scopes: ["tokens:write", "tokens:reveal"],
            actor: "test",
          })
        ).secret;
        const principal = await principalOf(core);
        const now = core.clock.now().getTime();
        for (let start = 0; start < TOKENS; start += 100) {
          const requests = [];
          const cards: Expected[] = [];
          for (let i = start; i < Math.min(TOKENS, start + 100); i++) {
            const number = NUMBERS[i % NUMBERS.length] as string;
            const expMonth = (Math.floor(i / NUMBERS.length) % 12) + 1;
            cards.push({ number, expMonth });
            requests.push({
              card: cardOf(number, { exp_month: expMonth }),
              dedupe: false,
              ...(i % 3 === 0
                ? { persistent: true }
                : i % 3 === 1
                  ? {}
                  : { expires_at: new Date(now + 80 * DAY_MS).toISOString() }),
            });
          }
          const results = await core.tokens.tokenizeBatch(principal, requests);
          results.forEach((result, index) => {
            if (!result.ok) throw new Error(`tokenize failed: ${result.code}`);
            expected.set(result.token.id, cards[index] as Expected);
          });
        }
      });
      expect(expected.size).toBe(TOKENS);
    }, SLOW);

    afterAll(async () => {
      await store?.drop();
      if (dataDir !== undefined) await rm(dataDir, { recursive: true, force: true });
    });

    it(
      "SIGKILL mid-job leaves it running; the same command resumes it, and every token reveals",
      async () => {
        const first = startCli(ARGS, { dataDir, env: store.env, timeoutMs: 120_000 });
        // Wait for a batch to be committed and reported (not the 0% line), then kill it hard.
        await first.waitFor(/re-encrypting tokens [1-9]\d*% /, 90_000);
        first.child.kill("SIGKILL");
        const killed = await first.exited;
        expect(killed.signal).toBe("SIGKILL");
        expect(killed.stdout).toMatch(/^\d+ pan key\(s\) rotated: dek_[0-9A-Za-z]+/);
        // The rotation waited for every node to re-read its keys before the job began.
        expect(killed.stderr).toMatch(
          /^waiting 3\d s for every node to stop encrypting under the retired key\(s\)$/m,
        );
        const beforeKill = progressLines(killed.stderr);
        expect(beforeKill.length).toBeGreaterThan(0);

        // The job is in the store, still running, part-way.
        const [job] = await withCore(jobs);
        expect(job).toBeDefined();
        const { id, done, total } = job as JobRow;
        expect(job?.state).toBe("running");
        expect(total).toBe(TOKENS);
        expect(done).toBeGreaterThan(0);
        expect(done).toBeLessThan(total);
        // Progress lines: the format, batch-sized steps (two pages are written at once, so a
        // line may count both), never going back, and never ahead of the store.
        let previous = 0;
        for (const line of beforeKill) {
          expect(line.total).toBe(total);
          expect(line.done % 5).toBe(0);
          expect(line.done).toBeGreaterThanOrEqual(Math.max(previous, 5));
          expect(line.percent).toBe(Math.floor((line.done / line.total) * 100));
          previous = line.done;
        }
        expect(beforeKill.at(-1)?.done).toBeLessThanOrEqual(done);

        const second = await runCli(ARGS, { dataDir, env: store.env });
        expect(second.code, `${second.stdout}\n${second.stderr}`).toBe(0);
        expect(second.stdout).toContain(`Resuming ${id}: ${done}/${total} done before it stopped.`);
        expect(second.stdout).toContain(
          `${id} done: ${total - done} tokens moved in this run, ${total}/${total} in all`,
        );
        expect(second.stdout).not.toMatch(/key\(s\) rotated/);
        const resumedLines = progressLines(second.stderr);
        expect(resumedLines[0]?.done).toBeGreaterThanOrEqual(done + 5);
        expect(resumedLines[0]?.done).toBeLessThanOrEqual(done + 10);
        expect(resumedLines.at(-1)).toMatchObject({ percent: 100, done: total, total });

        await withCore(async (core) => {
          const [finished] = await jobs(core);
          expect(finished).toMatchObject({ id, state: "done", done: total, total });
          // One job only: the second run resumed it rather than rotating again.
          expect(await jobs(core)).toHaveLength(1);
          const { rows: retired } = await core.db.query<{ n: number }>(
            "SELECT count(*)::int AS n FROM data_keys WHERE purpose = 'pan' AND retired_at IS NOT NULL",
          );
          const { rows: stale } = await core.db.query<{ n: number }>(
            `SELECT count(*)::int AS n FROM tokens t JOIN data_keys k ON k.id = t.dek_id
              WHERE k.retired_at IS NOT NULL`,
          );
          expect(retired[0]?.n).toBeGreaterThanOrEqual(3);
          expect(stale[0]?.n).toBe(0);
          // No token was re-encrypted twice: the job's audit events add up to the token count.
          const { rows: events } = await core.db.query<{ details: unknown }>(
            "SELECT details FROM audit_events WHERE action = 'key.reencrypt' AND object_id = $1",
            [id],
          );
          const audited = events.reduce((sum, row) => {
            const details = (
              typeof row.details === "string" ? JSON.parse(row.details) : row.details
            ) as { tokens: number };
            return sum + details.tokens;
          }, 0);
          expect(audited).toBe(TOKENS);
          // Every token reveals with its original card.
          const principal = await principalOf(core);
          for (const [tokenId, card] of expected) {
            const revealed = await core.tokens.reveal(principal, tokenId, "rotation cli test");
            expect(revealed.card.number).toBe(card.number);
            expect(revealed.card.exp_month).toBe(card.expMonth);
          }
        });
      },
      SLOW,
    );

    it(
      "SIGTERM stops after the current batch (exit 1, job running); keys jobs shows it; a rerun finishes it",
      async () => {
        const run = startCli(ARGS, { dataDir, env: store.env, timeoutMs: 120_000 });
        await run.waitFor(/re-encrypting tokens [1-9]\d*% /, 90_000);
        run.child.kill("SIGTERM");
        const stopped = await run.exited;
        expect(stopped.signal).toBeNull();
        expect(stopped.code, `${stopped.stdout}\n${stopped.stderr}`).toBe(1);
        const summary =
          /(job_[0-9A-Za-z]+) running: (\d+) tokens moved in this run, (\d+)\/(\d+) in all/.exec(
            stopped.stdout,
          );
        expect(summary, stopped.stdout).not.toBeNull();
        const [, id, moved, done, total] = summary as RegExpExecArray;
        expect(Number(total)).toBe(TOKENS);
        expect(Number(done)).toBe(Number(moved));
        expect(Number(done)).toBeGreaterThan(0);
        expect(Number(done)).toBeLessThan(TOKENS);
        // The last progress line is at most the two pages in flight behind where it stopped.
        const lastLine = progressLines(stopped.stderr).at(-1)?.done ?? 0;
        expect(lastLine).toBeLessThanOrEqual(Number(done));
        expect(lastLine).toBeGreaterThanOrEqual(Number(done) - 10);

        const listed = await runCli(["keys", "jobs", "--json"], { dataDir, env: store.env });
        expect(listed.code, listed.stderr).toBe(0);
        const rows = JSON.parse(listed.stdout) as Record<string, string>[];
        expect(rows).toHaveLength(2);
        expect(rows).toContainEqual(
          expect.objectContaining({
            id,
            purpose: "pan",
            tenant: "(all)",
            state: "running",
            done,
            total,
          }),
        );

        const rerun = await runCli(ARGS, { dataDir, env: store.env });
        expect(rerun.code, rerun.stderr).toBe(0);
        expect(rerun.stdout).toContain(`Resuming ${id}: ${done}/${total} done before it stopped.`);
        expect(rerun.stdout).toContain(`${id} done: ${TOKENS - Number(done)} tokens moved`);
        await withCore(async (core) => {
          const principal = await principalOf(core);
          for (const [tokenId, card] of expected) {
            const revealed = await core.tokens.reveal(principal, tokenId, "rotation cli test");
            expect(revealed.card.number).toBe(card.number);
          }
        });
      },
      SLOW,
    );

    it(
      "keys destroy refuses a key tokens are still under (KEY_IN_USE, with the count) unless --force",
      async () => {
        const [key] = await withCore(async (core) => {
          const { rows } = await core.db.query<{ id: string; n: number }>(
            `SELECT t.dek_id AS id, count(*)::int AS n FROM tokens t
              GROUP BY t.dek_id ORDER BY count(*) DESC LIMIT 1`,
          );
          return rows;
        });
        expect(key?.n).toBeGreaterThan(0);
        const refused = await runCli(
          ["keys", "destroy", key!.id, "--reason", "suspected compromise"],
          { dataDir, env: store.env },
        );
        expect(refused.code, refused.stdout).toBe(2);
        expect(refused.stderr).toContain(`KEY_IN_USE: ${key!.n} token(s) are still under this key`);
        const forced = await runCli(
          ["keys", "destroy", key!.id, "--reason", "suspected compromise", "--force"],
          { dataDir, env: store.env },
        );
        expect(forced.code, forced.stderr).toBe(0);
        expect(forced.stdout).toMatch(
          /^Proposed cer_[0-9A-Za-z]+ \(dek\.destroy dek_[0-9A-Za-z]+, forced: /,
        );
        await withCore(async (core) => {
          const { rows } = await core.db.query<{ params: unknown; state: string }>(
            "SELECT params, state FROM key_ceremonies WHERE action = 'dek.destroy'",
          );
          expect(rows).toHaveLength(1);
          const params =
            typeof rows[0]?.params === "string" ? JSON.parse(rows[0].params) : rows[0]?.params;
          expect(params).toEqual({ key_id: key!.id, reason: "suspected compromise", force: true });
          expect(rows[0]?.state).toBe("pending");
        });
      },
      SLOW,
    );
  });
}
