/**
 * Lets the event loop turn between batches of a long job. The embedded store (PGlite) answers
 * through promise callbacks alone, so without this a long job would hold off signal handlers
 * (Ctrl-C, SIGTERM stopping a CLI job) and the server's requests until its very end.
 */
export function turnEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
