import { constants } from "node:fs";
import { link, open, readFile, rename, rm, stat, utimes } from "node:fs/promises";
import { hostname } from "node:os";
import { resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { randomBytes } from "../crypto/random.js";
import { KeyServiceUnavailableError } from "./key-manager.js";

/**
 * Serializes the changes to one file (the `local` KEK file): within this process by a queue per
 * path, and across processes and nodes sharing the file by an exclusive lock file `<file>.lock`,
 * created with O_EXCL. Written by hand: the few lines below need no dependency.
 *
 * - The lock file holds its owner's host, pid and a random nonce. The owner touches it every
 *   `staleMs / 4` while it holds it, so a live owner's lock never looks stale.
 * - A lock is stale when its owner is a process on this host that no longer exists, or when it
 *   has not been touched for `staleMs` (an owner on another host that died). A stale lock is
 *   moved aside under a random name, checked to be the one judged stale, and removed.
 * - Before committing, the owner checks that the lock file is still its own (`assertHeld`), so a
 *   holder whose lock was broken writes nothing.
 */

export interface FileLockOptions {
  /** Give up waiting for the lock after this long (default 30 s). */
  readonly timeoutMs?: number;
  /** A lock not touched for this long is stale (default 20 s). */
  readonly staleMs?: number;
}

const DEFAULT_TIMEOUT_MS = 30_000;
const DEFAULT_STALE_MS = 20_000;

/**
 * The lock could not be taken in time: another process holds it. The key service is busy, not
 * the request wrong: it answers 503 KEY_SERVICE_UNAVAILABLE.
 */
export class FileLockTimeoutError extends KeyServiceUnavailableError {}

/** The lock was taken over by another process while it was held; nothing was committed. */
export class FileLockLostError extends KeyServiceUnavailableError {}

export interface HeldLock {
  /** Throws FileLockLostError unless the lock file is still this holder's. */
  assertHeld(): Promise<void>;
}

interface LockOwner {
  readonly host: string;
  readonly pid: number;
  readonly nonce: string;
}

const queues = new Map<string, Promise<void>>();

/** Runs `work` after every earlier call for the same path in this process has finished. */
export async function serializeOnPath<T>(path: string, work: () => Promise<T>): Promise<T> {
  const key = resolve(path);
  const previous = queues.get(key) ?? Promise.resolve();
  let done!: () => void;
  const turn = new Promise<void>((r) => {
    done = r;
  });
  const tail = previous.then(() => turn);
  queues.set(key, tail);
  await previous;
  try {
    return await work();
  } finally {
    done();
    if (queues.get(key) === tail) queues.delete(key);
  }
}

/** Runs `work` holding both the in-process queue and the cross-process lock of `path`. */
export function withFileLock<T>(
  path: string,
  options: FileLockOptions,
  work: (lock: HeldLock) => Promise<T>,
): Promise<T> {
  return serializeOnPath(path, async () => {
    const lock = await acquire(`${resolve(path)}.lock`, options);
    try {
      return await work(lock);
    } finally {
      await lock.release();
    }
  });
}

async function acquire(
  lockPath: string,
  options: FileLockOptions,
): Promise<HeldLock & { release(): Promise<void> }> {
  const staleMs = options.staleMs ?? DEFAULT_STALE_MS;
  const deadline = Date.now() + (options.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  const owner: LockOwner = {
    host: hostname(),
    pid: process.pid,
    nonce: randomBytes(16).toString("hex"),
  };
  let delay = 5;
  for (;;) {
    if (await tryCreate(lockPath, owner)) break;
    const info = await stat(lockPath).catch(() => undefined);
    if (info === undefined) continue; // released meanwhile: try again at once
    const holder = parseOwner(await readFile(lockPath, "utf8").catch(() => ""));
    if (isStale(holder, info.mtimeMs, staleMs)) {
      await breakStale(lockPath, info.ino, info.mtimeMs);
      continue;
    }
    if (Date.now() >= deadline) {
      throw new FileLockTimeoutError(
        `${lockPath} is held by ${holder === undefined ? "another process" : `process ${holder.pid} on ${holder.host}`}`,
      );
    }
    await sleep(delay + Math.floor(Math.random() * delay));
    delay = Math.min(delay * 2, 100);
  }
  const heartbeat = setInterval(
    () => {
      const now = new Date();
      utimes(lockPath, now, now).catch(() => undefined);
    },
    Math.max(50, Math.floor(staleMs / 4)),
  );
  heartbeat.unref();
  const isMine = async () =>
    parseOwner(await readFile(lockPath, "utf8").catch(() => ""))?.nonce === owner.nonce;
  return {
    async assertHeld() {
      if (!(await isMine())) {
        throw new FileLockLostError(`the lock ${lockPath} was taken over by another process`);
      }
    },
    async release() {
      clearInterval(heartbeat);
      // Never remove a lock that another process has taken over meanwhile.
      if (await isMine()) await rm(lockPath, { force: true });
    },
  };
}

async function tryCreate(lockPath: string, owner: LockOwner): Promise<boolean> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(lockPath, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw err;
  }
  try {
    await handle.writeFile(JSON.stringify(owner));
    await handle.sync();
  } catch (err) {
    await handle.close().catch(() => undefined);
    await rm(lockPath, { force: true });
    throw err;
  }
  await handle.close();
  return true;
}

function parseOwner(text: string): LockOwner | undefined {
  try {
    const parsed = JSON.parse(text) as Partial<LockOwner>;
    if (
      typeof parsed.host === "string" &&
      Number.isSafeInteger(parsed.pid) &&
      typeof parsed.nonce === "string"
    ) {
      return parsed as LockOwner;
    }
  } catch {
    // Empty (its owner is still writing it) or damaged: judged by its age alone.
  }
  return undefined;
}

function isStale(holder: LockOwner | undefined, mtimeMs: number, staleMs: number): boolean {
  if (
    holder !== undefined &&
    holder.host === hostname() &&
    holder.pid !== process.pid &&
    !processExists(holder.pid)
  ) {
    return true;
  }
  return Date.now() - mtimeMs > staleMs;
}

function processExists(pid: number): boolean {
  if (pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Moves the stale lock aside and removes it. If what was moved is not the lock judged stale (it
 * was released and taken again in between), it is put back unless a newer lock exists, in which
 * case its holder finds its lock gone at `assertHeld` and commits nothing.
 */
async function breakStale(lockPath: string, ino: number, mtimeMs: number): Promise<void> {
  const aside = `${lockPath}.${randomBytes(8).toString("hex")}.stale`;
  try {
    await rename(lockPath, aside);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
    throw err;
  }
  const moved = await stat(aside).catch(() => undefined);
  if (moved !== undefined && (moved.ino !== ino || moved.mtimeMs !== mtimeMs)) {
    await link(aside, lockPath).catch(() => undefined);
  }
  await rm(aside, { force: true });
}
