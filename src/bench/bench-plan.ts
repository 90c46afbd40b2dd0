import type { BenchSettings } from "./bench-settings.js";
import type { BodySource } from "./request-bodies.js";
import type { ScenarioSpec } from "./scenario.js";

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

export type ScenarioName =
  | "echo"
  | "bare-insert"
  | "tokenize"
  | "capture"
  | "batch-tokenize"
  | "bare-select"
  | "reveal"
  | "tokenize@half"
  | "reveal@half"
  | "capture@half";

/** Whether BENCH_ONLY asks for a scenario, directly or as the peak a half-rate run needs. */
export function wanted(settings: BenchSettings, name: ScenarioName): boolean {
  const { only } = settings;
  if (only.length === 0 || only.includes(name)) return true;
  return Object.entries(HALF_RATE_OF).some(([half, peak]) => peak === name && only.includes(half));
}

export type PeakName = Exclude<ScenarioName, "tokenize@half" | "reveal@half" | "capture@half">;

/** What the scenarios need that is made during the run: seeded ids, capture bodies. */
export interface PlanResources {
  readonly idsFile: { readonly vault: string; readonly bare: string };
  /** Capture bodies (made before each wrk run into `file`), once the capture key is known. */
  readonly capture: { readonly source: BodySource; readonly file: string } | undefined;
}

interface PlanInput extends PlanResources {
  readonly settings: BenchSettings;
}

type Shape = Pick<ScenarioSpec, "server" | "authorized" | "workload"> &
  Partial<Pick<ScenarioSpec, "connections" | "itemsPerRequest" | "bodies">>;

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
    itemsPerRequest: settings.batchSize,
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
};

/** A peak-rate scenario: as many requests as the server answers over `connections`. */
export function peakScenario(
  name: PeakName,
  settings: BenchSettings,
  connections: number,
  resources: PlanResources,
): ScenarioSpec {
  const shape = SHAPES[name]({ settings, ...resources });
  return { name, connections, rate: 0, itemsPerRequest: 1, ...shape };
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
