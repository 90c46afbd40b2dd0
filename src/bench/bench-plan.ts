import type { BenchSettings } from "./bench-settings.js";
import type { ForwardBodies } from "./forward-bodies.js";
import { PROCESSOR_CHARGES_PATH } from "./forward-bodies.js";
import type { BodySource } from "./request-bodies.js";
import type { ScenarioSpec } from "./scenario.js";
import type { WebhookBodies } from "./webhook-bodies.js";
import { QUEUED_MATCH, WEBHOOK_LINE_HEADER } from "./webhook-bodies.js";

export const ECHO_BODY = JSON.stringify({
  card: { number: "not-a-card-number", exp_month: 12, exp_year: 2030 },
});
const REVEAL_BODY = JSON.stringify({ purpose: "bench" });

/** The scenarios a half-rate run repeats, at half the rate its peak run reached. */
export const HALF_RATE_OF: Readonly<Record<string, string>> = {
  "tokenize@half": "tokenize",
  "reveal@half": "reveal",
  "capture@half": "capture",
};

/**
 * The forward comparison at one fixed rate (BENCH_FORWARD_RATE) for both: p50 at saturation is
 * queueing, so the overhead target is read from these (see README.md).
 */
export const FIXED_RATE_OF: Readonly<Record<string, string>> = {
  "processor-direct@fixed": "processor-direct",
  "forward@fixed": "forward",
};

export type ScenarioName =
  | "echo"
  | "bare-insert"
  | "tokenize"
  | "webhook-intake"
  | "capture"
  | "batch-tokenize"
  | "bare-select"
  | "reveal"
  | "processor-direct"
  | "forward"
  | "tokenize@half"
  | "reveal@half"
  | "capture@half"
  | "processor-direct@fixed"
  | "forward@fixed";

/**
 * What a scenario named in BENCH_ONLY brings with it: a half-rate run its peak; `forward` its
 * direct baseline and both fixed-rate runs (the overhead target needs all four);
 * `webhook-intake` the bare INSERT it is compared with.
 */
const BRINGS: Readonly<Record<string, readonly ScenarioName[]>> = {
  ...Object.fromEntries(
    Object.entries(HALF_RATE_OF).map(([half, peak]) => [half, [peak as ScenarioName]]),
  ),
  "processor-direct@fixed": ["processor-direct"],
  "forward@fixed": ["forward"],
  forward: ["processor-direct", "processor-direct@fixed", "forward@fixed"],
  "webhook-intake": ["bare-insert"],
};

/** Whether BENCH_ONLY asks for a scenario, directly or as one a scenario it names brings. */
export function wanted(settings: BenchSettings, name: ScenarioName): boolean {
  const { only } = settings;
  if (only.length === 0 || only.includes(name)) return true;
  return only.some((asked) => BRINGS[asked]?.includes(name) === true);
}

export type PeakName = Exclude<
  ScenarioName,
  "tokenize@half" | "reveal@half" | "capture@half" | "processor-direct@fixed" | "forward@fixed"
>;

/** What the scenarios need that is made during the run: seeded ids, capture bodies. */
export interface PlanResources {
  readonly idsFile: { readonly vault: string; readonly bare: string };
  /** Capture bodies (made before each wrk run into `file`), once the capture key is known. */
  readonly capture: { readonly source: BodySource; readonly file: string } | undefined;
  /** Signed webhook events (made before each wrk run into `file`), once the endpoint exists. */
  readonly webhook: { readonly source: WebhookBodies; readonly file: string } | undefined;
  /** The charge both forward scenarios send, once the destination and token exist. */
  readonly forward: ForwardBodies | undefined;
}

interface PlanInput extends PlanResources {
  readonly settings: BenchSettings;
}

type Shape = Pick<ScenarioSpec, "server" | "authorized" | "workload"> &
  Partial<Pick<ScenarioSpec, "connections" | "count" | "bodies">>;

function forwardBodies(forward: ForwardBodies | undefined): ForwardBodies {
  if (forward === undefined) throw new Error("forward: the processor and token are not set up");
  return forward;
}

/** What each peak scenario sends, and to which server. */
const SHAPES: Readonly<Record<PeakName, (input: PlanInput) => Shape>> = {
  echo: () => ({
    server: "baseline",
    authorized: false,
    workload: { kind: "fixed", method: "POST", path: "/echo", body: ECHO_BODY },
  }),
  "bare-insert": () => ({
    server: "baseline",
    authorized: false,
    workload: { kind: "card", path: "/bare/insert" },
  }),
  tokenize: () => ({
    server: "vault",
    authorized: true,
    workload: { kind: "card", path: "/v1/tokens" },
  }),
  capture: ({ capture }) => {
    if (capture === undefined) throw new Error("capture: the capture bodies are not set up");
    // No API key: the session inside each body is the credential, as for the capture frame.
    return {
      server: "vault",
      authorized: false,
      workload: {
        kind: "lines",
        method: "POST",
        path: "/v1/capture/tokenize",
        linesFile: capture.file,
      },
      bodies: capture.source,
    };
  },
  "batch-tokenize": ({ settings }) => ({
    server: "vault",
    authorized: true,
    connections: settings.batchConnections,
    // A batch answers 200 even when items fail: count the cards really tokenized.
    count: { match: '"status":201', unit: "cards" },
    workload: { kind: "batch", path: "/v1/tokens/batch", size: settings.batchSize },
  }),
  "bare-select": ({ idsFile }) => ({
    server: "baseline",
    authorized: false,
    workload: idsWorkload("GET", "/bare/select/", "", idsFile.bare, undefined),
  }),
  reveal: ({ idsFile }) => ({
    server: "vault",
    authorized: true,
    workload: idsWorkload("POST", "/v1/tokens/", "/reveal", idsFile.vault, REVEAL_BODY),
  }),
  "webhook-intake": ({ webhook }) => {
    if (webhook === undefined) throw new Error("webhook-intake: the endpoint is not set up");
    // No API key: the provider's signature is the credential.
    return {
      server: "vault",
      authorized: false,
      workload: {
        kind: "lines",
        method: "POST",
        path: webhook.source.path,
        linesFile: webhook.file,
        lineHeader: WEBHOOK_LINE_HEADER,
      },
      bodies: webhook.source,
      // A replay is a 200 too (`duplicate: true`), not queued: count only the events queued.
      count: { match: QUEUED_MATCH, unit: "events" },
    };
  },
  "processor-direct": ({ forward }) => ({
    server: "processor",
    authorized: false,
    workload: {
      kind: "fixed",
      method: "POST",
      path: PROCESSOR_CHARGES_PATH,
      body: forwardBodies(forward).direct,
    },
    count: { match: '"status":"succeeded"', unit: "charges" },
  }),
  forward: ({ forward }) => ({
    server: "vault",
    authorized: true,
    workload: {
      kind: "fixed",
      method: "POST",
      path: "/v1/forward",
      body: forwardBodies(forward).forward,
    },
    // The vault answers 200 whenever the processor answered: count the processor's 200s.
    count: { match: '"status":200', unit: "charges" },
  }),
};

/** A peak-rate scenario: as many requests as the server answers over `connections`. */
export function peakScenario(
  name: PeakName,
  settings: BenchSettings,
  connections: number,
  resources: PlanResources,
): ScenarioSpec {
  const shape = SHAPES[name]({ settings, ...resources });
  return { name, connections, rate: 0, ...shape };
}

/** The same load as a peak scenario, held at `rate` requests per second. */
export function halfRateScenario(peak: ScenarioSpec, name: string, rate: number): ScenarioSpec {
  return { ...peak, name, rate: Math.max(1, Math.round(rate)) };
}

function idsWorkload(
  method: string,
  pathPrefix: string,
  pathSuffix: string,
  idsFile: string,
  body: string | undefined,
) {
  return { kind: "ids", method, pathPrefix, pathSuffix, idsFile, body } as const;
}
