/**
 * Says which store drivers the run covers. Without DATABASE_URL a developer's run still passes
 * on PGlite, and is told plainly that the PostgreSQL suites were skipped; CI always sets it
 * (.ci/run) and fails if PostgreSQL is unreachable.
 */
export default function setup(): void {
  if (process.env.DATABASE_URL === undefined) {
    process.stdout.write(
      "\n[payvault tests] DATABASE_URL is not set: the PostgreSQL suites are SKIPPED; only PGlite runs.\n" +
        "[payvault tests] To run them: DATABASE_URL=postgres://postgres@127.0.0.1:5432/test npm test\n\n",
    );
  } else {
    process.stdout.write(
      "\n[payvault tests] running every store suite on PGlite and on PostgreSQL (DATABASE_URL)\n\n",
    );
  }
}
