import { randomBytes } from "node:crypto";
import type { FastifyInstance } from "fastify";
import { newId } from "../crypto/random.js";
import { createHttpStack } from "../http/http-stack.js";
import type { TlsMaterial } from "../http/tls.js";
import type { Logger } from "../log/logger.js";
import type { Database } from "../store/database.js";
import { BARE_DEK, BARE_INSERT_SQL, BARE_SELECT_SQL, BARE_TENANT } from "./bare-schema.js";

interface CardBody {
  readonly card: { readonly number: string; readonly exp_month: number; readonly exp_year: number };
}

/** Stands in for the vault's envelope (header + nonce + sealed payload + tag) of one card. */
const CIPHERTEXT_BYTES = 80;

/**
 * The baselines run on the vault's own HTTP stack (createHttpStack: Fastify 5 with the same TLS
 * options, logger, request ids, keep-alive, body parser and one log line per request). What is left out is exactly the vault's logic: security headers, API-key
 * authentication, schema validation, card checks, crypto and audit.
 */
export function buildBaselineApp(db: Database, logger: Logger, tls: TlsMaterial): FastifyInstance {
  const app = createHttpStack(logger, tls);
  registerBareRoutes(app, db);
  return app;
}

function registerBareRoutes(app: FastifyInstance, db: Database): void {
  app.get("/healthz", async () => ({ status: "ok" }));
  app.post("/echo", async (request) => ({ ok: true, fields: Object.keys(request.body ?? {}) }));
  app.post("/bare/insert", async (request, reply) => {
    // The request's values as they came: no validation, no fingerprint, no encryption.
    const { card } = request.body as CardBody;
    const id = newId("tok");
    await db.query(BARE_INSERT_SQL, [
      BARE_TENANT,
      id,
      "visa",
      card.number.slice(0, 8),
      card.number.slice(-4),
      card.exp_month,
      card.exp_year,
      card.number,
      `${card.number}/${card.exp_month}/${card.exp_year}`,
      BARE_DEK,
      randomBytes(CIPHERTEXT_BYTES),
      "{}",
      new Date(),
    ]);
    return reply.code(201).send({ id });
  });
  app.get("/bare/select/:id", async (request, reply) => {
    const { id } = request.params as { id: string };
    const { rows } = await db.query<Record<string, unknown>>(BARE_SELECT_SQL, [BARE_TENANT, id]);
    const row = rows[0];
    if (row === undefined) return reply.code(404).send({ error: "not found" });
    return { ...row, ciphertext: (row.ciphertext as Buffer).toString("base64") };
  });
  // Set-up only (not measured): rows for the SELECT baseline to read, in one statement.
  app.post("/bare/seed", async (request) => {
    const { count } = request.body as { count: number };
    const { rows } = await db.query<{ id: string }>(SEED_SQL, [BARE_TENANT, BARE_DEK, count]);
    return { ids: rows.map((r) => r.id) };
  });
}

const SEED_SQL = `INSERT INTO bare_tokens (tenant_id, id, format, brand, bin, last4, exp_month,
  exp_year, fingerprint, dedupe_key, dek_id, ciphertext, metadata, created_at)
  SELECT $1, 'tok_seed' || g || '_' || substr(md5(random()::text), 1, 12), 'random', 'visa',
         '42424242', lpad((g % 10000)::text, 4, '0'), 12, 2030, md5(g::text || random()::text),
         md5(random()::text || g::text), $2, decode(repeat(md5(g::text), 5), 'hex'), '{}', now()
    FROM generate_series(1, $3::int) AS g
  RETURNING id`;
