import { Agent, request } from "node:https";

export interface JsonResponse {
  readonly status: number;
  readonly body: unknown;
}

/**
 * Set-up and health-check calls (never measured): JSON over HTTPS to a server on this machine.
 * The servers use a self-signed certificate made for this run, so it is not verified; the
 * benchmark only ever talks to 127.0.0.1.
 */
export class HttpsJsonClient {
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 4, rejectUnauthorized: false });

  constructor(
    private readonly baseUrl: string,
    private readonly authorization?: string,
  ) {}

  send(method: string, path: string, body?: unknown, timeoutMs = 120_000): Promise<JsonResponse> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const headers: Record<string, string> = {};
    if (payload !== undefined) headers["content-type"] = "application/json";
    if (this.authorization !== undefined) headers.authorization = this.authorization;
    return new Promise((resolve, reject) => {
      const req = request(
        new URL(path, this.baseUrl),
        { method, headers, agent: this.agent, timeout: timeoutMs },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (chunk: Buffer) => chunks.push(chunk));
          res.on("end", () => {
            const text = Buffer.concat(chunks).toString("utf8");
            try {
              resolve({
                status: res.statusCode ?? 0,
                body: text === "" ? undefined : JSON.parse(text),
              });
            } catch {
              reject(
                new Error(`${method} ${path}: ${res.statusCode} with a body that is not JSON`),
              );
            }
          });
          res.on("error", reject);
        },
      );
      req.on("timeout", () => req.destroy(new Error(`${method} ${path}: timed out`)));
      req.on("error", reject);
      req.end(payload);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}
