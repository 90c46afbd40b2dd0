import { setTimeout as sleep } from "node:timers/promises";
import type { AuditEventInput } from "../../audit/audit-event.js";
import { DecryptionError } from "../../crypto/decryption-error.js";
import type { Purpose } from "../../crypto/envelope.js";
import { openEnvelope, sealEnvelope } from "../../crypto/envelope.js";
import { newId } from "../../crypto/random.js";
import { zeroize } from "../../crypto/secret.js";
import { VaultError } from "../../errors/registry.js";
import type { Environment, KekDescription, KeyManager } from "../../keys/key-manager.js";
import { kekOf } from "../../keys/key-manager.js";
import type { DataKey, KeyRing } from "../../keys/key-ring.js";
import { ACTIVE_RECHECK_MS, KeyDestroyedError, SYSTEM_KEY_OWNER } from "../../keys/key-ring.js";
import type { DataKeyRow } from "../../store/data-keys-repo.js";
import {
  destroyDataKeyAudited,
  findDataKey,
  findDataKeysToRewrap,
  listDataKeys,
  lockDataKeyForDestroy,
  rewrapDataKeysAudited,
} from "../../store/data-keys-repo.js";
import type { Database } from "../../store/database.js";
import type {
  JobPurpose,
  ReencryptUpdate,
  RefingerprintUpdate,
  RotationJobRow,
  StaleTokenRow,
} from "../../store/key-lifecycle-repo.js";
import {
  advanceJobAudited,
  applyReencryption,
  clearNewerDedupeHolders,
  countStaleTokens,
  findJob,
  findLastFinishedJob,
  findRunningJob,
  findStaleTokens,
  finishJob,
  insertRotationJob,
  latestRetirement,
  listJobs,
  lockRefingerprintRows,
  updateFingerprints,
  withExclusiveLock,
} from "../../store/key-lifecycle-repo.js";
import { countTokensUnderKey } from "../../store/tokens-repo.js";
import type { AuditTrail } from "../audit/audit-trail.js";
import type { Clock } from "../clock.js";
import { decodeCardPayload } from "../tokens/card-payload.js";
import { dedupeKeyOf, panFingerprint } from "../tokens/fingerprints.js";
import { turnEventLoop } from "../turn-event-loop.js";

/** One key record as the inventory shows it (PCI DSS 3.6.1.1). */
export interface KeyRecordView {
  readonly id: string;
  readonly owner: string;
  readonly environment: Environment;
  readonly purpose: Purpose;
  readonly epoch: string;
  readonly version: number;
  readonly algorithm: string;
  readonly strength_bits: number;
  readonly state: "active" | "retired" | "destroyed";
  readonly created_at: string;
  readonly age_days: number;
  readonly encrypt_until: string | null;
  /** Days of the time cryptoperiod left (null: none, or not active). */
  readonly cryptoperiod_days_left: number | null;
  readonly uses_reserved: number;
  readonly max_uses: number | null;
  readonly retired_at: string | null;
  readonly destroyed_at: string | null;
  readonly kek_id: string;
  readonly kek_version: number;
  /** Where the key lives: wrapped in the store, under which KEK backend. */
  readonly location: string;
}

export interface KeyInventory {
  readonly keks: readonly KekDescription[];
  readonly keys: readonly KeyRecordView[];
}

export interface JobProgress {
  readonly job: RotationJobRow;
  /** Tokens moved by this run (not the job's total). */
  readonly movedThisRun: number;
  readonly failed: number;
}

export interface RunJobOptions {
  readonly batchSize?: number;
  readonly onProgress?: (progress: JobProgress) => void;
  /** Called before waiting `ms` for other nodes to stop encrypting under the retired keys. */
  readonly onSettling?: (ms: number) => void;
  readonly signal?: AbortSignal;
}

export interface RotateDekOptions {
  /** Called before waiting `ms` for other nodes to switch to the new versions. */
  readonly onSettling?: (ms: number) => void;
  readonly signal?: AbortSignal;
}

export interface DestroyKeyOptions {
  /** Destroy even though tokens are still under the key: their card data becomes unrecoverable. */
  readonly force?: boolean;
  /** Crypto-shredding by the retention policy: a key still in use is kept (no error). */
  readonly retention?: boolean;
}

export interface KeyDestruction {
  readonly destroyed: boolean;
  /** Tokens under the key when it was destroyed (made unreadable), or that kept it. */
  readonly tokens: number;
}

/**
 * The injected clock. One that can also wait lets tests move time instead of sleeping; without
 * `sleep`, waits are real timers.
 */
export interface LifecycleClock extends Clock {
  sleep?(ms: number, signal?: AbortSignal): Promise<void>;
}

/**
 * How long after a key's retirement tokens may still be written under it: every node re-reads
 * its slot's current version at least every ACTIVE_RECHECK_MS (key-ring.ts), and a request that
 * got the old version just before may still be writing for a moment (this grace). A job is only
 * reported done after a sweep that began once this has passed (PCI DSS 3.6.4, 3.7.4).
 */
export const RETIREMENT_SETTLE_MS = ACTIVE_RECHECK_MS + 5_000;

const DAY_MS = 86_400_000;
/** Attempts at a re-fingerprinting batch that met a concurrent insert of its dedupe key. */
const REFINGERPRINT_ATTEMPTS = 3;
const REWRAP_BATCH = 500;
const REWRAP_CONCURRENCY = 8;
/** Pages of a re-encryption job in flight at once. */
const JOB_WORKERS = 2;

/**
 * The key lifecycle (PCI DSS 3.6, 3.7): inventory, KEK rotation with re-wrap of every DEK (no
 * card data decrypted), DEK rotation with a resumable re-encryption job, fingerprint-key rotation
 * with re-fingerprinting, and key destruction. Every step is in the audit chain.
 */
export class KeyLifecycle {
  constructor(
    private readonly db: Database,
    private readonly keyManager: KeyManager,
    private readonly keys: KeyRing,
    private readonly audit: AuditTrail,
    private readonly clock: LifecycleClock,
  ) {}

  async inventory(): Promise<KeyInventory> {
    const now = this.clock.now().getTime();
    const keks = this.keyManager.describe();
    const rows = await listDataKeys(this.db);
    return { keks, keys: rows.map((row) => this.view(row, now)) };
  }

  /**
   * Generates a new KEK version and re-wraps every DEK of the environment under it (PCI DSS
   * 3.6.4, 3.7.4). Runs only as an approved ceremony (dual control) or from the maintenance job.
   * One rotation or re-wrap of an environment at a time across all nodes: a second one gets 409
   * ROTATION_IN_PROGRESS instead of creating another version.
   */
  async rotateKek(
    environment: Environment,
    actor: string,
  ): Promise<{ kek: KekDescription; rewrapped: number }> {
    return this.exclusive(kekLock(environment), async () => {
      const kek = await this.keyManager.rotateKek(environment);
      await this.audit.record(this.db, {
        ...this.systemEvent(actor, "kek.rotate", kek.kekId),
        details: { environment, kek_version: kek.currentVersion, backend: kek.kind },
      });
      return { kek, rewrapped: await this.rewrapUnlocked(environment, actor) };
    });
  }

  /**
   * Re-wraps every DEK of the environment not yet under the current KEK version; resumable (it
   * picks up whatever an interrupted run left). Runs under the environment's rotation lock
   * (409 ROTATION_IN_PROGRESS while another node rotates or re-wraps it).
   */
  async rewrap(
    environment: Environment,
    actor: string,
    onProgress?: (done: number) => void,
  ): Promise<number> {
    return this.exclusive(kekLock(environment), () =>
      this.rewrapUnlocked(environment, actor, onProgress),
    );
  }

  private async rewrapUnlocked(
    environment: Environment,
    actor: string,
    onProgress?: (done: number) => void,
  ): Promise<number> {
    const kek = kekOf(this.keyManager, environment);
    let afterId = "";
    let done = 0;
    for (;;) {
      const batch = await findDataKeysToRewrap(
        this.db,
        environment,
        { id: kek.kekId, version: kek.currentVersion },
        afterId,
        REWRAP_BATCH,
      );
      if (batch.length === 0) return done;
      afterId = batch.at(-1)?.id ?? afterId;
      const updates = await mapLimited(batch, REWRAP_CONCURRENCY, async (row) => {
        const wrapped = await this.keyManager.rewrapKey(
          { kekId: row.kek_id, kekVersion: row.kek_version, ciphertext: row.wrapped as Buffer },
          { dekId: row.id, owner: row.owner, purpose: row.purpose, environment: row.environment },
        );
        return {
          id: row.id,
          oldKekId: row.kek_id,
          oldKekVersion: row.kek_version,
          wrapped: wrapped.ciphertext,
          kekId: wrapped.kekId,
          kekVersion: wrapped.kekVersion,
        };
      });
      const event = await this.audit.build({
        ...this.systemEvent(actor, "kek.rewrap", kek.kekId),
        details: { environment, kek_version: kek.currentVersion, keys: updates.length },
      });
      done += await rewrapDataKeysAudited(this.db, updates, event);
      onProgress?.(done);
      await turnEventLoop();
    }
  }

  /** How many tokens a key is still under (card data or fingerprints), expired or not. */
  async tokensUnderKey(id: string): Promise<number> {
    return countTokensUnderKey(this.db, id);
  }

  /**
   * Destroys a key's material (PCI DSS 3.7.5): an approved `dek.destroy` ceremony, or
   * crypto-shredding by the retention policy (3.2.1). Neither ever races a token write:
   * - the key row is locked FOR UPDATE first, so token writers (which lock it FOR KEY SHARE in
   *   their own statement) wait, or are waited for;
   * - then a new statement (a fresh snapshot) counts the tokens still under the key;
   * - then, in the same transaction, the key is destroyed only if none is, unless forced.
   * A key still in use is refused with 409 KEY_IN_USE (retention: kept, no error). Forced, the
   * `key.destroy` event records it and how many tokens were made unreadable.
   */
  async destroyKey(
    id: string,
    actor: string,
    reason: string,
    options: DestroyKeyOptions = {},
  ): Promise<KeyDestruction> {
    const row = await findDataKey(this.db, id);
    if (row === undefined) throw new VaultError("KEY_NOT_FOUND");
    if (row.owner === SYSTEM_KEY_OWNER) {
      // The audit and API-key keys protect no card data; destroying them breaks the vault.
      throw new VaultError("VALIDATION_FAILED", {
        errors: [
          {
            field: "key_id",
            code: "SYSTEM_KEY",
            message: "The vault's own keys cannot be destroyed.",
          },
        ],
      });
    }
    const force = options.force === true && options.retention !== true;
    const outcome = await this.db.transaction(async (tx): Promise<KeyDestruction> => {
      // Only the transaction's client inside it: PGlite has one connection.
      const locked = await lockDataKeyForDestroy(tx, id);
      if (locked === undefined) throw new VaultError("KEY_NOT_FOUND");
      if (locked.destroyed_at !== null) {
        if (options.retention === true) return { destroyed: false, tokens: 0 };
        throw new VaultError("KEY_DESTROYED");
      }
      const tokens = await countTokensUnderKey(tx, id);
      if (tokens > 0 && !force) {
        if (options.retention === true) return { destroyed: false, tokens };
        throw new VaultError("KEY_IN_USE", {
          detail: `${tokens} token(s) are still under this key. Re-encrypt them first (payvault keys rotate --dek), or destroy it with force: their card data would become unrecoverable.`,
        });
      }
      const event = await this.audit.build({
        tenantId: row.owner,
        actor,
        action: "key.destroy",
        objectId: id,
        outcome: "success",
        details: {
          purpose: row.purpose,
          environment: row.environment,
          epoch: row.epoch,
          reason,
          forced: force,
          tokens_unreadable: tokens,
        },
      });
      const destroyed = await destroyDataKeyAudited(tx, id, this.clock.now(), event, force);
      return { destroyed, tokens: destroyed ? tokens : 0 };
    });
    if (outcome.destroyed) this.keys.forget(id);
    return outcome;
  }

  /**
   * DEK rotation: every current key of the purpose (in the tenant, or everywhere) gets a new
   * version, and a job moves every token off the retired versions (`pan`: re-encryption;
   * `fingerprint`: new fingerprints and dedupe keys). An interrupted job of the same purpose
   * and scope is resumed instead of rotating again. One rotation of a purpose at a time across
   * all nodes (409 ROTATION_IN_PROGRESS). Before it returns a new job it waits until no node can
   * still encrypt under the retired versions, so the job's first sweep finds every token.
   */
  async rotateDek(
    purpose: Purpose,
    tenantId: string | null,
    actor: string,
    options: RotateDekOptions = {},
  ): Promise<{ rotated: DataKey[]; job: RotationJobRow | undefined; resumed: boolean }> {
    const result = await this.exclusive(dekLock(purpose), async () => {
      if (purpose === "pan" || purpose === "fingerprint") {
        const running = await findRunningJob(this.db, purpose, tenantId);
        if (running !== undefined) return { rotated: [], job: running, resumed: true };
      }
      const rotated = await this.rotateSlots(purpose, tenantId, actor);
      if (purpose !== "pan" && purpose !== "fingerprint") {
        return { rotated, job: undefined, resumed: false };
      }
      return { rotated, job: await this.startJob(purpose, tenantId, actor), resumed: false };
    });
    if (result.job !== undefined && !result.resumed && result.rotated.length > 0) {
      const settled = await this.settledAt(result.job);
      const left = settled - this.clock.now().getTime();
      if (left > 0) options.onSettling?.(left);
      await this.waitUntil(settled, options.signal);
    }
    return result;
  }

  /** Retires the current version of every matching slot and creates the next (audited). */
  private async rotateSlots(
    purpose: Purpose,
    tenantId: string | null,
    actor: string,
  ): Promise<DataKey[]> {
    const rows = await listDataKeys(this.db);
    const current = new Map<string, DataKeyRow>();
    for (const row of rows) {
      if (row.purpose !== purpose || row.destroyed_at !== null) continue;
      if (tenantId !== null && row.owner !== tenantId) continue;
      if (purpose !== "audit" && row.owner === SYSTEM_KEY_OWNER) continue;
      const slot = [row.owner, row.environment, row.epoch].join("\u0000");
      const seen = current.get(slot);
      if (seen === undefined || seen.version < row.version) current.set(slot, row);
    }
    const rotated: DataKey[] = [];
    for (const row of current.values()) {
      const key = await this.keys.rotate({
        owner: row.owner,
        purpose,
        environment: row.environment,
        epoch: row.epoch,
      });
      await this.audit.record(this.db, {
        tenantId: row.owner === SYSTEM_KEY_OWNER ? undefined : row.owner,
        actor,
        action: "key.retire",
        objectId: row.id,
        outcome: "success",
        details: { purpose, environment: row.environment, epoch: row.epoch, successor: key.id },
      });
      rotated.push(key);
    }
    return rotated;
  }

  async job(id: string): Promise<RotationJobRow | undefined> {
    return findJob(this.db, id);
  }

  async jobs(limit = 50): Promise<RotationJobRow[]> {
    return listJobs(this.db, limit);
  }

  /**
   * Runs (or resumes) a job to the end: batches of tokens under retired keys are moved, each
   * batch with its audit event, each row only if still under the key it was read with. Killing
   * it at any point loses nothing and encrypts nothing twice; running it again continues where
   * it stopped. It is marked done only after a sweep that began once no node could still
   * encrypt under the retired keys (RETIREMENT_SETTLE_MS after the last retirement): a sweep
   * that began earlier is followed by a wait and another sweep (PCI DSS 3.6.4, 3.7.4).
   */
  async runJob(jobId: string, actor: string, options: RunJobOptions = {}): Promise<JobProgress> {
    let job = await findJob(this.db, jobId);
    if (job === undefined) throw new VaultError("KEY_NOT_FOUND");
    const run: RunState = { moved: 0, failed: new Set() };
    if (job.state === "running") {
      let waitedFor = Number.NEGATIVE_INFINITY;
      for (;;) {
        const sweepStart = this.clock.now().getTime();
        const exhausted = await this.sweep(job, actor, options, run);
        if (!exhausted || options.signal?.aborted === true) break;
        const settled = await this.settledAt(job);
        // `waitedFor`: the injected clock may stand still (tests), real time did pass.
        if (sweepStart >= settled || waitedFor >= settled) {
          await finishJob(this.db, job.id, this.clock.now(), run.failed.size);
          break;
        }
        options.onSettling?.(settled - this.clock.now().getTime());
        if (!(await this.waitUntil(settled, options.signal))) break;
        waitedFor = settled;
      }
      job = (await findJob(this.db, job.id)) as RotationJobRow;
    }
    return { job, movedThisRun: run.moved, failed: run.failed.size };
  }

  /**
   * One pass over every token under a retired key of the job's scope. Pages come from one
   * keyset cursor, handed out one at a time; JOB_WORKERS pages are re-encrypted and written at
   * once (the pages never overlap), so the store's writes run in parallel. Returns whether it
   * reached the end (false when stopped by the signal).
   */
  private async sweep(
    job: RotationJobRow,
    actor: string,
    options: RunJobOptions,
    run: RunState,
  ): Promise<boolean> {
    const batchSize = options.batchSize ?? 2000;
    let cursor = { tenantId: "", id: "" };
    let exhausted = false;
    let handout: Promise<unknown> = Promise.resolve();
    const takePage = (): Promise<StaleTokenRow[]> => {
      const page = handout.then(async () => {
        if (exhausted) return [];
        const batch = await findStaleTokens(this.db, job.purpose, job.tenant_id, batchSize, cursor);
        const last = batch.at(-1);
        if (last === undefined) exhausted = true;
        else cursor = { tenantId: last.tenant_id, id: last.id };
        return batch;
      });
      handout = page.catch(() => undefined);
      return page;
    };
    const worker = async () => {
      while (options.signal?.aborted !== true) {
        const batch = await takePage();
        if (batch.length === 0) return;
        // Awaited before adding: `x += await y` would read x before the other worker's update.
        const moved =
          job.purpose === "pan"
            ? await this.reencryptBatch(job, actor, batch, run)
            : await this.refingerprintBatch(job, actor, batch, run);
        run.moved += moved;
        const progress = (await findJob(this.db, job.id)) as RotationJobRow;
        options.onProgress?.({ job: progress, movedThisRun: run.moved, failed: run.failed.size });
        await turnEventLoop();
      }
    };
    await Promise.all(Array.from({ length: JOB_WORKERS }, worker));
    return exhausted;
  }

  /**
   * Writes a re-encrypted batch in one statement with its `key.reencrypt` event. The event
   * counts exactly the tokens the statement moved: when some rows changed since they were read
   * (another runner, a delete), nothing is written and the batch is retried with only the rows
   * that can still move, under an event that counts just those.
   */
  private async reencryptBatch(
    job: RotationJobRow,
    actor: string,
    batch: readonly StaleTokenRow[],
    run: RunState,
  ): Promise<number> {
    const result = await this.reencrypt(batch);
    for (const failed of result.failed) run.failed.add(failed);
    let pending = result.updates;
    while (pending.length > 0) {
      const event = await this.audit.build({
        ...this.systemEvent(actor, "key.reencrypt", job.id),
        tenantId: job.tenant_id ?? undefined,
        details: { purpose: "pan", tokens: pending.length, failed: result.failed.length },
      });
      const outcome = await applyReencryption(this.db, job.id, pending, this.clock.now(), event);
      if (outcome.movable === undefined) return outcome.moved;
      const still = new Set(outcome.movable.map((r) => rowKey(r.tenantId, r.id)));
      pending = pending.filter((u) => still.has(rowKey(u.tenantId, u.id)));
    }
    return 0;
  }

  /**
   * Writes a re-fingerprinted batch in one transaction with its `key.reencrypt` event, which
   * counts the tokens moved and the dedupe keys cleared. A dedupe key already held by another
   * token of the same card stays with the older token and the newer one's is cleared (see
   * clearNewerDedupeHolders), so the unique dedupe index never stops the job. A concurrent insert
   * of the same dedupe key, or a deadlock with another runner, retries the batch.
   */
  private async refingerprintBatch(
    job: RotationJobRow,
    actor: string,
    batch: readonly StaleTokenRow[],
    run: RunState,
  ): Promise<number> {
    const result = await this.refingerprint(batch);
    for (const failed of result.failed) run.failed.add(failed);
    if (result.updates.length === 0) return 0;
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.db.transaction(async (tx) => {
          // Only the transaction's client inside it: PGlite has one connection.
          const locked = await lockRefingerprintRows(tx, result.updates);
          if (locked.length === 0) return 0;
          const keep = new Set(locked.map((r) => rowKey(r.tenant_id, r.id)));
          const updates = result.updates.filter((u) => keep.has(rowKey(u.tenantId, u.id)));
          const holders = await clearNewerDedupeHolders(tx, updates);
          const { moved, cleared } = await updateFingerprints(tx, updates);
          const dedupeCleared = holders + cleared;
          const event = await this.audit.build({
            ...this.systemEvent(actor, "key.reencrypt", job.id),
            tenantId: job.tenant_id ?? undefined,
            details: {
              purpose: "fingerprint",
              tokens: moved,
              failed: result.failed.length,
              dedupe_cleared: dedupeCleared,
            },
          });
          await advanceJobAudited(tx, job.id, { moved, dedupeCleared }, this.clock.now(), event);
          return moved;
        });
      } catch (err) {
        if (attempt >= REFINGERPRINT_ATTEMPTS || !isRetryableConflict(err)) throw err;
      }
    }
  }

  /** Jobs are run to their end by the maintenance loop too (e.g. after a crash). */
  async resumeRunningJobs(actor: string, signal?: AbortSignal): Promise<number> {
    let moved = 0;
    for (const purpose of ["pan", "fingerprint"] as const) {
      for (const job of await listJobs(this.db, 20)) {
        if (job.state !== "running" || job.purpose !== purpose) continue;
        moved += (await this.runJob(job.id, actor, signal === undefined ? {} : { signal }))
          .movedThisRun;
      }
    }
    return moved;
  }

  /**
   * Starts a job for tokens left on retired keys (e.g. keys retired by their cryptoperiod), or
   * runs the one already running. A purpose another node is starting a job for right now is
   * left to that node.
   */
  async reencryptStale(actor: string, signal?: AbortSignal): Promise<number> {
    let moved = 0;
    for (const purpose of ["pan", "fingerprint"] as JobPurpose[]) {
      const stale = await countStaleTokens(this.db, purpose, null);
      if (stale === 0) continue;
      const started = await withExclusiveLock(this.db, dekLock(purpose), async () => {
        const running = await findRunningJob(this.db, purpose, null);
        if (running !== undefined) return running;
        // Tokens the last job could not decrypt stay where they are (counted in its audit
        // events); a new job starts only when more tokens have gone stale since.
        const last = await findLastFinishedJob(this.db, purpose, null);
        if (last !== undefined && stale <= last.failed) return undefined;
        return this.startJob(purpose, null, actor);
      });
      if (!started.acquired || started.value === undefined) continue;
      moved += (await this.runJob(started.value.id, actor, signal === undefined ? {} : { signal }))
        .movedThisRun;
    }
    return moved;
  }

  private async startJob(
    purpose: JobPurpose,
    tenantId: string | null,
    actor: string,
  ): Promise<RotationJobRow> {
    const now = this.clock.now();
    const job: RotationJobRow = {
      id: newId("job"),
      purpose,
      tenant_id: tenantId,
      state: "running",
      total: await countStaleTokens(this.db, purpose, tenantId),
      done: 0,
      failed: 0,
      dedupe_cleared: 0,
      started_by: actor,
      started_at: now,
      updated_at: now,
      finished_at: null,
    };
    await insertRotationJob(this.db, job);
    return job;
  }

  /** When no node can still encrypt under the job's retired keys (ms since epoch; 0: none). */
  private async settledAt(job: RotationJobRow): Promise<number> {
    const at = await latestRetirement(this.db, job.purpose, job.tenant_id);
    return at === undefined ? 0 : at.getTime() + RETIREMENT_SETTLE_MS;
  }

  /** Waits until `at` on the injected clock; false when stopped by the signal first. */
  private async waitUntil(at: number, signal: AbortSignal | undefined): Promise<boolean> {
    const left = at - this.clock.now().getTime();
    if (signal?.aborted === true) return false;
    try {
      if (left > 0 && this.clock.sleep !== undefined) await this.clock.sleep(left, signal);
      else if (left > 0) await sleep(left, undefined, signal === undefined ? {} : { signal });
    } catch (err) {
      if ((err as Error | null)?.name !== "AbortError") throw err;
    }
    return signal === undefined || !signal.aborted;
  }

  /** Runs `work` holding the cluster-wide lock `name`, or refuses with 409. */
  private async exclusive<T>(name: string, work: () => Promise<T>): Promise<T> {
    const outcome = await withExclusiveLock(this.db, name, work);
    if (!outcome.acquired) throw new VaultError("ROTATION_IN_PROGRESS");
    return outcome.value;
  }

  private async reencrypt(
    batch: readonly StaleTokenRow[],
  ): Promise<{ updates: ReencryptUpdate[]; failed: string[] }> {
    const targets = new Map<string, DataKey>();
    const uses = new Map<string, number>();
    for (const row of batch) {
      const slot = [row.tenant_id, row.environment, row.epoch].join("\u0000");
      uses.set(slot, (uses.get(slot) ?? 0) + 1);
    }
    for (const row of batch) {
      const slot = [row.tenant_id, row.environment, row.epoch].join("\u0000");
      if (targets.has(slot)) continue;
      targets.set(
        slot,
        await this.keys.activeKey(
          { owner: row.tenant_id, purpose: "pan", environment: row.environment, epoch: row.epoch },
          undefined,
          uses.get(slot) ?? 1,
        ),
      );
    }
    const updates: ReencryptUpdate[] = [];
    const failed: string[] = [];
    for (const row of batch) {
      const target = targets.get(
        [row.tenant_id, row.environment, row.epoch].join("\u0000"),
      ) as DataKey;
      const context = { tenantId: row.tenant_id, objectId: row.id, purpose: "pan" } as const;
      let plaintext: Buffer | undefined;
      try {
        const old = await this.keys.keyById(row.dek_id, row.tenant_id, "pan");
        plaintext = openEnvelope(row.ciphertext, old.material, context);
        const ciphertext = sealEnvelope({
          dekId: target.id,
          key: target.material,
          plaintext,
          context,
        });
        updates.push({
          tenantId: row.tenant_id,
          id: row.id,
          oldDekId: row.dek_id,
          dekId: target.id,
          ciphertext,
        });
      } catch (err) {
        if (!(err instanceof DecryptionError) && !(err instanceof KeyDestroyedError)) throw err;
        failed.push(rowKey(row.tenant_id, row.id));
      } finally {
        if (plaintext !== undefined) zeroize(plaintext);
      }
    }
    return { updates, failed };
  }

  private async refingerprint(
    batch: readonly StaleTokenRow[],
  ): Promise<{ updates: RefingerprintUpdate[]; failed: string[] }> {
    const updates: RefingerprintUpdate[] = [];
    const failed: string[] = [];
    for (const row of batch) {
      const key = await this.keys.activeKey({
        owner: row.tenant_id,
        purpose: "fingerprint",
        environment: row.environment,
      });
      const context = { tenantId: row.tenant_id, objectId: row.id, purpose: "pan" } as const;
      let plaintext: Buffer | undefined;
      try {
        const pan = await this.keys.keyById(row.dek_id, row.tenant_id, "pan");
        plaintext = openEnvelope(row.ciphertext, pan.material, context);
        const card = decodeCardPayload(plaintext);
        updates.push({
          tenantId: row.tenant_id,
          id: row.id,
          oldKeyId: row.fingerprint_key_id,
          keyId: key.id,
          fingerprint: panFingerprint(key.material, card.number),
          dedupeKey: row.has_dedupe
            ? dedupeKeyOf(
                key.material,
                {
                  number: card.number,
                  expMonth: card.exp_month,
                  expYear: card.exp_year,
                  name: card.name,
                },
                row.format,
              )
            : null,
        });
      } catch (err) {
        if (!(err instanceof DecryptionError) && !(err instanceof KeyDestroyedError)) throw err;
        failed.push(rowKey(row.tenant_id, row.id));
      } finally {
        if (plaintext !== undefined) zeroize(plaintext);
      }
    }
    return { updates, failed };
  }

  private view(row: DataKeyRow, now: number): KeyRecordView {
    const state =
      row.destroyed_at !== null ? "destroyed" : row.retired_at !== null ? "retired" : "active";
    const until = row.encrypt_until?.getTime();
    return {
      id: row.id,
      owner: row.owner,
      environment: row.environment,
      purpose: row.purpose,
      epoch: row.epoch,
      version: row.version,
      algorithm: row.algorithm,
      strength_bits: 256,
      state,
      created_at: row.created_at.toISOString(),
      age_days: Math.floor((now - row.created_at.getTime()) / DAY_MS),
      encrypt_until: row.encrypt_until?.toISOString() ?? null,
      cryptoperiod_days_left:
        state === "active" && until !== undefined
          ? Math.max(0, Math.floor((until - now) / DAY_MS))
          : null,
      uses_reserved: row.uses_reserved,
      max_uses: row.max_uses,
      retired_at: row.retired_at?.toISOString() ?? null,
      destroyed_at: row.destroyed_at?.toISOString() ?? null,
      kek_id: row.kek_id,
      kek_version: row.kek_version,
      location:
        state === "destroyed"
          ? "nowhere (destroyed)"
          : `store, wrapped by ${this.keyManager.kind} KEK ${row.kek_id} v${row.kek_version}`,
    };
  }

  private systemEvent(
    actor: string,
    action: AuditEventInput["action"],
    objectId: string,
  ): AuditEventInput {
    return { tenantId: undefined, actor, action, objectId, outcome: "success", details: {} };
  }
}

/** What one run of a job has done so far (failed: tokens, counted once however often met). */
interface RunState {
  moved: number;
  readonly failed: Set<string>;
}

function rowKey(tenantId: string, id: string): string {
  return `${tenantId}\u0000${id}`;
}

/** The cluster-wide lock of an environment's KEK rotation and re-wrap. */
function kekLock(environment: Environment): string {
  return `kek:${environment}`;
}

/** The cluster-wide lock of a DEK purpose's rotation and job start. */
function dekLock(purpose: Purpose): string {
  return `dek-rotate:${purpose}`;
}

/** A unique violation (a concurrent insert of the same dedupe key) or a deadlock: try again. */
function isRetryableConflict(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === "23505" || code === "40P01";
}

/** Maps with at most `limit` calls in flight (KMS round trips), keeping the input order. */
async function mapLimited<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<R>,
): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await fn(items[index] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}
