import { Agent } from "node:https";
import type { ResolvedAddress } from "./resolver.js";

/** Bounds of the keep-alive pool (docs/outbound.md, "Connection reuse"). */
export interface KeepAliveSettings {
  /** Distinct (address, port, host name) agents kept; the least recently used is closed first. */
  readonly maxAgents: number;
  /** Concurrent connections to one checked address (more requests queue in the agent). */
  readonly maxSocketsPerAgent: number;
  /** Idle connections kept per agent. */
  readonly maxFreeSocketsPerAgent: number;
  /** An idle connection is closed after this long (below common server idle timeouts of 5 s+). */
  readonly idleTimeoutMs: number;
}

export const KEEP_ALIVE_DEFAULTS: KeepAliveSettings = {
  maxAgents: 64,
  maxSocketsPerAgent: 32,
  maxFreeSocketsPerAgent: 8,
  idleTimeoutMs: 4_000,
};

function closeIdle(agent: Agent): void {
  for (const sockets of Object.values(agent.freeSockets)) {
    for (const socket of sockets ?? []) socket.destroy();
  }
}

/** What one pooled connection was checked for: every request it serves must match all of it. */
export interface PoolKey {
  /** The address that passed the address policy for this request (after this request's DNS). */
  readonly pinned: ResolvedAddress;
  readonly port: number;
  /** The host name: SNI, Host header and the name the certificate was verified against. */
  readonly host: string;
}

/**
 * Keep-alive agents, one per (checked address, port, host name); the trust anchors are fixed per
 * outbound client, so a pool never mixes CAs. Node's own agent keys sockets by host name and
 * TLS options, not by the address the socket reached, so one shared agent would hand a socket
 * opened to yesterday's address to a request whose name now resolves elsewhere. Here a request
 * only ever gets a socket that was opened to the very address its own resolution just checked:
 * reuse saves the TCP and TLS handshakes, never the resolution or the address check.
 */
export class AgentPool {
  readonly #agents = new Map<string, Agent>();

  constructor(private readonly settings: KeepAliveSettings = KEEP_ALIVE_DEFAULTS) {}

  agentFor(key: PoolKey): Agent {
    const name = `${key.pinned.family}|${key.pinned.address}|${key.port}|${key.host}`;
    const found = this.#agents.get(name);
    if (found !== undefined) {
      // Map order is insertion order: re-inserting keeps the most recently used last.
      this.#agents.delete(name);
      this.#agents.set(name, found);
      return found;
    }
    const agent = new Agent({
      keepAlive: true,
      maxSockets: this.settings.maxSocketsPerAgent,
      maxFreeSockets: this.settings.maxFreeSocketsPerAgent,
      timeout: this.settings.idleTimeoutMs,
      scheduling: "lifo",
    });
    this.#agents.set(name, agent);
    while (this.#agents.size > this.settings.maxAgents) {
      const [oldest, evicted] = this.#agents.entries().next().value as [string, Agent];
      this.#agents.delete(oldest);
      // Idle connections close now; one in flight finishes its request, goes back to the
      // evicted agent's free list and closes at its idle timeout (idle sockets are unref'd).
      closeIdle(evicted);
    }
    return agent;
  }

  /** Agents held (tests and diagnostics). */
  get size(): number {
    return this.#agents.size;
  }

  /** Closes every pooled connection. */
  destroy(): void {
    for (const agent of this.#agents.values()) agent.destroy();
    this.#agents.clear();
  }
}
