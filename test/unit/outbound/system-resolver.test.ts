import { beforeEach, describe, expect, it, vi } from "vitest";

/** getaddrinfo stands in here: each call waits until the test answers it. */
const calls: { name: string; answer: () => void }[] = [];
vi.mock("node:dns/promises", () => ({
  lookup: (name: string) =>
    new Promise((resolve) => {
      calls.push({ name, answer: () => resolve([{ address: "203.0.113.10", family: 4 }]) });
    }),
}));

const { systemResolver } = await import("../../../src/outbound/resolver.js");

const settle = () => new Promise((resolve) => setTimeout(resolve, 0));

describe("the system resolver's limits", () => {
  beforeEach(() => {
    calls.length = 0;
  });

  it("runs at most two lookups at once, handing each freed slot to the next in line", async () => {
    const names = ["a.example", "b.example", "c.example", "d.example"];
    const results = names.map((name) => systemResolver(name));
    await settle();
    expect(calls.map((c) => c.name)).toEqual(["a.example", "b.example"]);
    calls[0]?.answer();
    await settle();
    // A newcomer arriving as the slot is handed over does not get in ahead of the queue.
    const late = systemResolver("e.example");
    await settle();
    expect(calls.map((c) => c.name)).toEqual(["a.example", "b.example", "c.example"]);
    for (let i = 1; i < 5; i++) {
      calls[i]?.answer();
      await settle();
    }
    expect(calls.map((c) => c.name)).toEqual([
      "a.example",
      "b.example",
      "c.example",
      "d.example",
      "e.example",
    ]);
    await Promise.all([...results, late]);
  });

  it("looks a name up once for concurrent requests, and reuses the answer briefly", async () => {
    const first = [systemResolver("same.example"), systemResolver("same.example")];
    await settle();
    expect(calls.map((c) => c.name)).toEqual(["same.example"]);
    calls[0]?.answer();
    const [a, b] = await Promise.all(first);
    expect(a).toEqual([{ address: "203.0.113.10", family: 4 }]);
    expect(b).toBe(a);
    expect(await systemResolver("same.example")).toBe(a);
    expect(calls).toHaveLength(1);
  });
});
