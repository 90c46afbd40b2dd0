/**
 * A short reason for the log when a Redis command fails. Never the error's message or fields as a
 * whole: ioredis attaches the failed command's arguments (keys, which hold ids or client
 * addresses, and values, which may be sealed CVCs) to a ReplyError. A server error's first word
 * (NOAUTH, OOM, READONLY…) is kept; it is Redis's own text, never ours.
 */
export function redisFailureReason(err: unknown): string {
  if (!(err instanceof Error)) return "unknown error";
  const code = (err as { code?: unknown }).code;
  if (typeof code === "string" && /^[A-Z0-9_]{1,32}$/.test(code)) return code;
  if (err.name === "ReplyError") return `ReplyError ${/^[A-Z]{1,32}/.exec(err.message)?.[0] ?? ""}`;
  if (/^Command timed out$/.test(err.message)) return "command timed out";
  if (/enableOfflineQueue/.test(err.message)) return "not connected";
  if (/^Connection is closed/.test(err.message)) return "connection closed";
  if (/max retries per request/i.test(err.message)) return "connection lost";
  return err.name;
}
