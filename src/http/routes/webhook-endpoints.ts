import type { FastifyInstance } from "fastify";
import type { HttpDeps } from "../context.js";

/** STUB (issue 6, being written). */
export function registerWebhookEndpoints(_app: FastifyInstance, _deps: HttpDeps): void {}
