import { TEST_BIN } from "./test-cards.js";

/** What each request of a wrk run carries. */
export type Workload =
  /** The same request every time (the echo baseline). */
  | {
      readonly kind: "fixed";
      readonly method: string;
      readonly path: string;
      readonly body: string;
    }
  /** `{"card": …}` with a new test card each time (tokenize, bare INSERT). */
  | { readonly kind: "card"; readonly path: string }
  /** `{"cards": [{"card": …} × size]}` with new test cards (batch tokenize). */
  | { readonly kind: "batch"; readonly path: string; readonly size: number }
  /** prefix + id + suffix, cycling over the ids in a file (reveal, bare SELECT). */
  | {
      readonly kind: "ids";
      readonly method: string;
      readonly pathPrefix: string;
      readonly pathSuffix: string;
      readonly idsFile: string;
      readonly body: string | undefined;
    }
  /**
   * One body per line of a file made beforehand (capture, webhooks), each sent once: line i goes
   * to wrk thread i mod threads, in order. A thread that runs out stops (no body is ever
   * replayed) and counts what it could not send, so the results show it. With `lineHeader`, a
   * line is `<that header's value>\t<body>` (a webhook's signature travels with its body).
   */
  | {
      readonly kind: "lines";
      readonly method: string;
      readonly path: string;
      readonly linesFile: string;
      readonly lineHeader?: string;
    };

export interface ScriptOptions {
  readonly workload: Workload;
  readonly authorization: string | undefined;
  /** First card counter value; each wrk thread starts CARD_STRIDE further on. */
  readonly cardStart: number;
  readonly expMonth: number;
  readonly expYear: number;
  /** Requests per second per wrk thread; 0 = as fast as the server answers. */
  readonly ratePerThread: number;
  /** wrk threads (-t): the `lines` workload deals its lines out among them. */
  readonly threads: number;
  /**
   * Counted in every 200 answer's body, each occurrence once (plain text, not a pattern): what
   * a request really did when its status alone does not say (batch items created, webhook
   * events queued rather than acknowledged as duplicates). Undefined: wrk reads no bodies.
   */
  readonly countMatch?: string | undefined;
}

/** Cards one wrk thread may use in one run before it would reach the next thread's. */
export const CARD_STRIDE = 10_000_000;

function luaString(value: string): string {
  if (!/^[\x20-\x7e]*$/.test(value)) throw new Error("wrk script values must be printable ASCII");
  return `"${value.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}

/** An HTTP field name (RFC 9110 token): what goes before the tab of a `lines` line. */
function headerName(name: string): string {
  if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name)) throw new Error(`not a header name: ${name}`);
  return name;
}

function luaConfig(options: ScriptOptions): string {
  const w = options.workload;
  const entries: Record<string, string> = {
    kind: luaString(w.kind),
    auth: options.authorization === undefined ? "nil" : luaString(options.authorization),
    card_start: String(options.cardStart),
    stride: String(CARD_STRIDE),
    bin: luaString(TEST_BIN),
    exp_month: String(options.expMonth),
    exp_year: String(options.expYear),
    rate: String(options.ratePerThread),
    threads: String(options.threads),
    method: luaString(w.kind === "batch" || w.kind === "card" ? "POST" : w.method),
    path: luaString(w.kind === "ids" ? w.pathPrefix : w.path),
    path_suffix: luaString(w.kind === "ids" ? w.pathSuffix : ""),
    body:
      w.kind === "fixed" || (w.kind === "ids" && w.body !== undefined)
        ? luaString(w.body ?? "")
        : "nil",
    batch: String(w.kind === "batch" ? w.size : 0),
    ids_file: w.kind === "ids" ? luaString(w.idsFile) : "nil",
    lines_file: w.kind === "lines" ? luaString(w.linesFile) : "nil",
    line_header:
      w.kind === "lines" && w.lineHeader !== undefined
        ? luaString(headerName(w.lineHeader))
        : "nil",
    count_match: options.countMatch === undefined ? "nil" : luaString(options.countMatch),
  };
  const fields = Object.entries(entries).map(([k, v]) => `  ${k} = ${v},`);
  return `local cfg = {\n${fields.join("\n")}\n}\n`;
}

/**
 * A wrk Lua script (wrk 4.1, LuaJIT) for one workload. Card numbers are made inside wrk, per
 * request, the way TestCardSource makes them: 424242 + a 9-digit counter + the Luhn digit;
 * bodies wrk cannot make (capture JWEs) are read from a file made beforehand, each sent once.
 * With a rate, delay() paces each thread on a fixed schedule (LuaJIT FFI monotonic clock);
 * a schedule more than a second behind is reset rather than caught up in a burst.
 * done() prints one `BENCH_RESULT {json}` line that the runner parses.
 */
export function wrkScript(options: ScriptOptions): string {
  return luaConfig(options) + LUA_BODY;
}

const LUA_BODY = String.raw`
local threads = {}
function setup(thread)
  thread:set("thread_index", #threads)
  table.insert(threads, thread)
end

counted, lines_sent, lines_missing = 0, 0, 0
local counter, ids, id_pos, headers, fixed_request, lines_in, line_no

function init(args)
  counter = cfg.card_start + (thread_index or 0) * cfg.stride
  headers = {}
  if cfg.body ~= nil or cfg.kind == "card" or cfg.kind == "batch" or cfg.kind == "lines" then
    headers["Content-Type"] = "application/json"
  end
  if cfg.auth ~= nil then headers["Authorization"] = cfg.auth end
  if cfg.kind == "fixed" then fixed_request = wrk.format(cfg.method, cfg.path, headers, cfg.body) end
  if cfg.ids_file ~= nil then
    ids = {}
    for line in io.lines(cfg.ids_file) do
      if #line > 0 then ids[#ids + 1] = line end
    end
    id_pos = ((thread_index or 0) * 7919) % #ids
  end
  if cfg.lines_file ~= nil then
    lines_in = assert(io.open(cfg.lines_file, "r"))
    line_no = 0
  end
end

-- This thread's next line (lines i with i mod threads = its index), read as it goes: a file of
-- tens of thousands of bodies need not sit in LuaJIT's memory.
local function next_line()
  while true do
    local line = lines_in:read("*l")
    if line == nil then return nil end
    line_no = line_no + 1
    if (line_no - 1) % cfg.threads == (thread_index or 0) and #line > 0 then return line end
  end
end

local function line_request()
  local line = next_line()
  if line ~= nil then
    lines_sent = lines_sent + 1
    if cfg.line_header == nil then return wrk.format(cfg.method, cfg.path, headers, line) end
    -- "<header value>\t<body>": the header is set for this request only (wrk.format copies it).
    local tab = string.find(line, "\t", 1, true)
    if tab == nil then error("a lines file line has no tab before its body") end
    headers[cfg.line_header] = string.sub(line, 1, tab - 1)
    local request = wrk.format(cfg.method, cfg.path, headers, string.sub(line, tab + 1))
    headers[cfg.line_header] = nil
    return request
  end
  -- Out of bodies: a body is never sent twice (a replayed jti is refused), so this thread stops.
  -- wrk still wants a request to write; the loop ends before its answer is read or counted.
  lines_missing = lines_missing + 1
  wrk.thread:stop()
  return wrk.format("GET", "/healthz")
end

local function luhn_digit(partial)
  local sum, double = 0, true
  for i = #partial, 1, -1 do
    local d = partial:byte(i) - 48
    if double then
      d = d * 2
      if d > 9 then d = d - 9 end
    end
    sum = sum + d
    double = not double
  end
  return (10 - sum % 10) % 10
end

local function card()
  local partial = cfg.bin .. string.format("%09d", counter % 1000000000)
  counter = counter + 1
  return '{"card":{"number":"' .. partial .. luhn_digit(partial) .. '","exp_month":' ..
    cfg.exp_month .. ',"exp_year":' .. cfg.exp_year .. '}}'
end

-- wrk calls request() once on thread 0's state before any connection, only to count the
-- requests it returns (script_verify_request): that call must not use up a line.
local verified = (thread_index or 0) ~= 0

function request()
  if cfg.kind == "fixed" then return fixed_request end
  if cfg.kind == "lines" then
    if not verified then
      verified = true
      return wrk.format("GET", "/healthz")
    end
    return line_request()
  end
  if cfg.kind == "card" then return wrk.format("POST", cfg.path, headers, card()) end
  if cfg.kind == "batch" then
    local parts = {}
    for i = 1, cfg.batch do parts[i] = card() end
    return wrk.format("POST", cfg.path, headers, '{"cards":[' .. table.concat(parts, ",") .. ']}')
  end
  id_pos = id_pos % #ids + 1
  return wrk.format(cfg.method, cfg.path .. ids[id_pos] .. cfg.path_suffix, headers, cfg.body)
end

if cfg.count_match ~= nil then
  -- A 200 does not say it all (a batch answers 200 even when items fail; a webhook replay is a
  -- 200 duplicate): count what was really done. Plain find, no Lua pattern characters.
  function response(status, headers, body)
    if status == 200 and body ~= nil then
      local from = 1
      while true do
        local _, last = string.find(body, cfg.count_match, from, true)
        if last == nil then break end
        counted = counted + 1
        from = last + 1
      end
    end
  end
end

if cfg.rate > 0 then
  local ffi = require("ffi")
  ffi.cdef("typedef struct { long sec; long nsec; } bench_timespec; int clock_gettime(int, bench_timespec *);")
  local ts = ffi.new("bench_timespec")
  local function now_ms()
    ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
    return tonumber(ts.sec) * 1000 + tonumber(ts.nsec) / 1e6
  end
  local interval, next_at = 1000 / cfg.rate, nil
  function delay()
    local now = now_ms()
    if next_at == nil or next_at < now - 1000 then next_at = now end
    local wait = next_at - now
    next_at = next_at + interval
    if wait < 1 then return 0 end
    return math.floor(wait)
  end
end

function done(summary, latency, requests)
  local made, sent, missing = 0, 0, 0
  for _, t in ipairs(threads) do
    made = made + (t:get("counted") or 0)
    sent = sent + (t:get("lines_sent") or 0)
    missing = missing + (t:get("lines_missing") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    '\nBENCH_RESULT {"requests":%.0f,"duration_us":%.0f,"bytes":%.0f,' ..
    '"errors":{"connect":%.0f,"read":%.0f,"write":%.0f,"status":%.0f,"timeout":%.0f},' ..
    '"latency_us":{"p50":%.0f,"p90":%.0f,"p99":%.0f,"max":%.0f,"mean":%.1f},"counted":%.0f,' ..
    '"lines_sent":%.0f,"lines_missing":%.0f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean, made, sent, missing))
end
`;
