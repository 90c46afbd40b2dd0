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
import { KeyDestroyedError, SYSTEM_KEY_OWNER } from "../../keys/key-ring.js";
import type { DataKeyRow } from "../../store/data-keys-repo.js";
import {
  destroyDataKeyAudited,
  findDataKey,
  findDataKeysToRewrap,
  listDataKeys,
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
  applyReencryption,
  applyRefingerprint,
  countStaleTokens,
  findJob,
  findLastFinishedJob,
  findRunningJob,
  findStaleTokens,
  finishJob,
  insertRotationJob,
  listJobs,
} from "../../store/key-lifecycle-repo.js";
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
  readonly signal?: AbortSignal;
}

const DAY_MS = 86_400_000;
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
    private readonly clock: Clock,
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
   */
  async rotateKek(
    environment: Environment,
    actor: string,
  ): Promise<{ kek: KekDescription; rewrapped: number }> {
    const kek = await this.keyManager.rotateKek(environment);
    await this.audit.record(this.db, {
      ...this.systemEvent(actor, "kek.rotate", kek.kekId),
      details: { environment, kek_version: kek.currentVersion, backend: kek.kind },
    });
    return { kek, rewrapped: await this.rewrap(environment, actor) };
  }

  /**
   * Re-wraps every DEK of the environment not yet under the current KEK version; resumable (it
   * picks up whatever an interrupted run left) and safe to run on several nodes at once.
   */
  async rewrap(
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

  /** Destroys a key's material (PCI DSS 3.7.5); an approved ceremony or crypto-shredding. */
  async destroyKey(id: string, actor: string, reason: string): Promise<void> {
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
    const event = await this.audit.build({
      tenantId: row.owner,
      actor,
      action: "key.destroy",
      objectId: id,
      outcome: "success",
      details: { purpose: row.purpose, environment: row.environment, epoch: row.epoch, reason },
    });
    await destroyDataKeyAudited(this.db, id, this.clock.now(), event);
    this.keys.forget(id);
  }

  /**
   * DEK rotation: every current key of the purpose (in the tenant, or everywhere) gets a new
   * version, and a job moves every token off the retired versions (`pan`: re-encryption;
   * `fingerprint`: new fingerprints and dedupe keys). An interrupted job of the same purpose
   * and scope is resumed instead of rotating again.
   */
  async rotateDek(
    purpose: Purpose,
    tenantId: string | null,
    actor: string,
  ): Promise<{ rotated: DataKey[]; job: RotationJobRow | undefined; resumed: boolean }> {
    if (purpose === "pan" || purpose === "fingerprint") {
      const running = await findRunningJob(this.db, purpose, tenantId);
      if (running !== undefined) return { rotated: [], job: running, resumed: true };
    }
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
    if (purpose !== "pan" && purpose !== "fingerprint") {
      return { rotated, job: undefined, resumed: false };
    }
    const job = await this.startJob(purpose, tenantId, actor);
    return { rotated, job, resumed: false };
  }

  async job(id: string): Promise<RotationJobRow | undefined> {
    return findJob(this.db, id);
  }

  async jobs(limit = 50): Promise<RotationJobRow[]> {
    return listJobs(this.db, limit);
  }

  /**
   * Runs (or resumes) a job to the end: batches of tokens under retired keys are moved, each
   * batch in one statement with its audit event, each row only if still under the key it was
   * read with. Killing it at any point loses nothing and encrypts nothing twice; running it
   * again continues where it stopped.
   */
  async runJob(jobId: string, actor: string, options: RunJobOptions = {}): Promise<JobProgress> {
    const batchSize = options.batchSize ?? 2000;
    let job = (await findJob(this.db, jobId)) as RotationJobRow;
    if (job === undefined) throw new VaultError("KEY_NOT_FOUND");
    let movedThisRun = 0;
    let failed = 0;
    // Pages come from one keyset cursor, handed out one at a time; WORKERS pages are re-encrypted
    // and written at once (the pages never overlap), so the store's writes run in parallel.
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
        const result =
          job.purpose === "pan" ? await this.reencrypt(batch) : await this.refingerprint(batch);
        failed += result.failed;
        const event = await this.audit.build({
          ...this.systemEvent(actor, "key.reencrypt", job.id),
          tenantId: job.tenant_id ?? undefined,
          details: { purpose: job.purpose, tokens: result.count, failed: result.failed },
        });
        // Awaited before adding: `x += await y` would read x before the other worker's update.
        const moved =
          job.purpose === "pan"
            ? await applyReencryption(
                this.db,
                job.id,
                result.updates as ReencryptUpdate[],
                this.clock.now(),
                event,
              )
            : await applyRefingerprint(
                this.db,
                job.id,
                result.updates as RefingerprintUpdate[],
                this.clock.now(),
                event,
              );
        movedThisRun += moved;
        const progress = (await findJob(this.db, job.id)) as RotationJobRow;
        options.onProgress?.({ job: progress, movedThisRun, failed });
        await turnEventLoop();
      }
    };
    if (job.state === "running") {
      await Promise.all(Array.from({ length: JOB_WORKERS }, worker));
      if (exhausted && options.signal?.aborted !== true) {
        await finishJob(this.db, job.id, this.clock.now(), failed);
      }
      job = (await findJob(this.db, job.id)) as RotationJobRow;
    }
    return { job, movedThisRun, failed };
  }

  /** Jobs are run to their end by the maintenance loop too (e.g. after a crash). */
  async resumeRunningJobs(actor: string): Promise<number> {
    let moved = 0;
    for (const purpose of ["pan", "fingerprint"] as const) {
      for (const job of await listJobs(this.db, 20)) {
        if (job.state !== "running" || job.purpose !== purpose) continue;
        moved += (await this.runJob(job.id, actor)).movedThisRun;
      }
    }
    return moved;
  }

  /** Starts a job for tokens left on retired keys (e.g. keys retired by their cryptoperiod). */
  async reencryptStale(actor: string): Promise<number> {
    let moved = 0;
    for (const purpose of ["pan", "fingerprint"] as JobPurpose[]) {
      const stale = await countStaleTokens(this.db, purpose, null);
      if (stale === 0) continue;
      const running = await findRunningJob(this.db, purpose, null);
      // Tokens the last job could not decrypt stay where they are (counted in its audit events);
      // a new job starts only when more tokens have gone stale since.
      const last =
        running === undefined ? await findLastFinishedJob(this.db, purpose, null) : undefined;
      if (last !== undefined && stale <= last.failed) continue;
      const job = running ?? (await this.startJob(purpose, null, actor));
      moved += (await this.runJob(job.id, actor)).movedThisRun;
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
      started_by: actor,
      started_at: now,
      updated_at: now,
      finished_at: null,
    };
    await insertRotationJob(this.db, job);
    return job;
  }

  private async reencrypt(
    batch: readonly StaleTokenRow[],
  ): Promise<{ updates: ReencryptUpdate[]; count: number; failed: number }> {
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
    let failed = 0;
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
        failed += 1;
      } finally {
        if (plaintext !== undefined) zeroize(plaintext);
      }
    }
    return { updates, count: updates.length, failed };
  }

  private async refingerprint(
    batch: readonly StaleTokenRow[],
  ): Promise<{ updates: RefingerprintUpdate[]; count: number; failed: number }> {
    const updates: RefingerprintUpdate[] = [];
    let failed = 0;
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
        failed += 1;
      } finally {
        if (plaintext !== undefined) zeroize(plaintext);
      }
    }
    return { updates, count: updates.length, failed };
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
