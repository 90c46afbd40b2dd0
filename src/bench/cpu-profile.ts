import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";

/** The parts of a V8 .cpuprofile (Chrome DevTools Profiler.Profile) that a summary needs. */
export interface CpuProfile {
  readonly nodes: readonly {
    readonly id: number;
    readonly callFrame: {
      readonly functionName: string;
      readonly url: string;
      readonly lineNumber: number;
    };
  }[];
  /** Microseconds on the monotonic clock (CLOCK_MONOTONIC, as process.hrtime). */
  readonly startTime: number;
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

/** A span of the monotonic clock, in microseconds. */
export interface Window {
  readonly startUs: number;
  readonly endUs: number;
}

export interface Share {
  readonly name: string;
  /** Of the busy (non-idle) samples in the window. */
  readonly percent: number;
  readonly ms: number;
}

export interface ProfileSummary {
  readonly busyMs: number;
  readonly idleMs: number;
  readonly categories: readonly Share[];
  readonly functions: readonly Share[];
}

type Frame = CpuProfile["nodes"][number]["callFrame"];

function shortUrl(url: string): string {
  const modules = url.lastIndexOf("node_modules/");
  if (modules >= 0) return url.slice(modules + "node_modules/".length);
  const dist = url.lastIndexOf("/dist/");
  return dist >= 0
    ? `payvault/${url.slice(dist + "/dist/".length)}`
    : url.replace(/^file:\/\//, "");
}

/** Where the time went, coarsely: which package, the vault's own code, the engine, GC. */
function categoryOf(frame: Frame): string {
  const { url, functionName } = frame;
  if (url.startsWith("wasm://")) return "PGlite engine (WebAssembly)";
  if (url === "")
    return functionName.startsWith("(") ? functionName : "native (fs, tls, crypto bindings)";
  const short = shortUrl(url);
  if (short.startsWith("payvault/")) return `payvault ${short.slice(9).split("/")[0]}/`;
  if (url.startsWith("node:")) return `node ${url.slice(5).split("/").slice(0, 2).join("/")}`;
  const parts = short.split("/");
  return (parts[0]?.startsWith("@") ? parts.slice(0, 2).join("/") : parts[0]) ?? short;
}

function label(frame: Frame): string {
  const name = frame.functionName || "(anonymous)";
  return frame.url === "" ? name : `${name} (${shortUrl(frame.url)}:${frame.lineNumber + 1})`;
}

function shares(totals: Map<string, number>, busyUs: number, top: number): Share[] {
  return [...totals.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([name, us]) => ({
      name,
      percent: Math.round((1000 * us) / Math.max(busyUs, 1)) / 10,
      ms: Math.round(us / 1000),
    }));
}

/** Self time per category and per function over the samples inside `window`, largest first. */
export function summarise(profile: CpuProfile, window: Window, top: number): ProfileSummary {
  const frameOf = new Map(profile.nodes.map((n) => [n.id, n.callFrame]));
  const byCategory = new Map<string, number>();
  const byFunction = new Map<string, number>();
  let at = profile.startTime;
  let busyUs = 0;
  let idleUs = 0;
  profile.samples.forEach((nodeId, i) => {
    const delta = profile.timeDeltas[i] ?? 0;
    at += delta;
    const frame = frameOf.get(nodeId);
    if (frame === undefined || at < window.startUs || at > window.endUs) return;
    if (frame.functionName === "(idle)") {
      idleUs += delta;
      return;
    }
    busyUs += delta;
    const category = categoryOf(frame);
    byCategory.set(category, (byCategory.get(category) ?? 0) + delta);
    byFunction.set(label(frame), (byFunction.get(label(frame)) ?? 0) + delta);
  });
  return {
    busyMs: Math.round(busyUs / 1000),
    idleMs: Math.round(idleUs / 1000),
    categories: shares(byCategory, busyUs, top),
    functions: shares(byFunction, busyUs, top),
  };
}

/** Reads the one .cpuprofile that `node --cpu-prof --cpu-prof-dir=dir` wrote at exit. */
export async function readProfileIn(dir: string): Promise<{ file: string; profile: CpuProfile }> {
  const files = (await readdir(dir)).filter((f) => f.endsWith(".cpuprofile"));
  const file = files[0];
  if (file === undefined) throw new Error(`no .cpuprofile in ${dir}`);
  const path = join(dir, file);
  return { file: path, profile: JSON.parse(await readFile(path, "utf8")) as CpuProfile };
}

/** Now on the monotonic clock the profile uses, in microseconds. */
export function monotonicUs(): number {
  return Number(process.hrtime.bigint() / 1000n);
}
