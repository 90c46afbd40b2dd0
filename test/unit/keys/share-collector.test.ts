import { describe, expect, it } from "vitest";
import { randomBytes } from "../../../src/crypto/random.js";
import type { UnsealErrorCode } from "../../../src/keys/seal.js";
import {
  ShareCollector,
  UNSEAL_LOCKOUT_MS,
  UNSEAL_MAX_FAILURES,
  UnsealError,
} from "../../../src/keys/seal.js";
import { decodeShare, encodeShare } from "../../../src/keys/unseal-share.js";

/**
 * The share collector behind unsealing and rekey confirmation (PCI DSS 3.6.1.2): which refusals
 * count toward the lockout, and that junk never undoes honest custodians' progress.
 */

const SET = "kset_collectortest";

function setUp(now: () => number = () => 0) {
  const key = randomBytes(32);
  const shares = ShareCollector.split(SET, key, { shares: 5, threshold: 3 });
  const collector = new ShareCollector({ setId: SET, threshold: 3, shares: 5 }, now);
  const opens = (candidate: Buffer) => candidate.equals(key);
  return { key, shares, collector, opens };
}

function code(run: () => unknown): UnsealErrorCode {
  try {
    run();
  } catch (err) {
    expect(err).toBeInstanceOf(UnsealError);
    return (err as UnsealError).code;
  }
  throw new Error("expected an UnsealError");
}

function withBadChecksum(share: string): string {
  const last = share.at(-1) === "0" ? "1" : "0";
  return `${share.slice(0, -1)}${last}`;
}

describe("ShareCollector", () => {
  it("combines a threshold of shares, in any order, and hands the key to open", () => {
    const { shares, collector, opens } = setUp();
    expect(collector.submit(shares[4] as string, opens)).toBe(false);
    expect(collector.submit(shares[0] as string, opens)).toBe(false);
    expect(collector.progress).toBe(2);
    expect(collector.submit(shares[2] as string, opens)).toBe(true);
    expect(collector.progress).toBe(0);
  });

  it("refuses malformed, foreign, wrong-length and out-of-range shares without counting them or touching pending shares", () => {
    const { shares, collector, opens } = setUp();
    const foreign = ShareCollector.split("kset_other", randomBytes(32), {
      shares: 5,
      threshold: 3,
    });
    const otherThreshold = ShareCollector.split(SET, randomBytes(32), { shares: 5, threshold: 2 });
    const { kekSetId, threshold } = decodeShare(shares[0] as string);
    const short = encodeShare({ kekSetId, threshold, index: 2, value: randomBytes(31) });
    const beyond = encodeShare({ kekSetId, threshold, index: 9, value: randomBytes(32) });
    collector.submit(shares[0] as string, opens);
    collector.submit(shares[1] as string, opens);
    for (let i = 0; i < UNSEAL_MAX_FAILURES * 3; i++) {
      expect(code(() => collector.submit("junk", opens))).toBe("UNSEAL_SHARE_INVALID");
      expect(code(() => collector.submit(short, opens))).toBe("UNSEAL_SHARE_INVALID");
      expect(code(() => collector.submit(beyond, opens))).toBe("UNSEAL_SHARE_INVALID");
      expect(code(() => collector.submit(foreign[0] as string, opens))).toBe(
        "UNSEAL_SHARE_FOREIGN",
      );
      expect(code(() => collector.submit(otherThreshold[0] as string, opens))).toBe(
        "UNSEAL_SHARE_FOREIGN",
      );
    }
    expect(collector.progress).toBe(2);
    expect(collector.submit(shares[2] as string, opens)).toBe(true);
  });

  it("counts duplicates and failed combinations, never wrong checksums: the fifth locks for 15 minutes, keeping pending shares", () => {
    let now = 1_000;
    const { shares, collector, opens } = setUp(() => now);
    collector.submit(shares[0] as string, opens);
    for (let i = 0; i < 2 * UNSEAL_MAX_FAILURES; i++) {
      expect(code(() => collector.submit(withBadChecksum(shares[1] as string), opens))).toBe(
        "UNSEAL_SHARE_INVALID",
      );
    }
    expect(code(() => collector.submit(shares[0] as string, opens))).toBe("UNSEAL_SHARE_DUPLICATE");
    expect(code(() => collector.submit(shares[0] as string, opens))).toBe("UNSEAL_SHARE_DUPLICATE");
    collector.submit(shares[1] as string, opens);
    // A threshold that does not open: counted, and every pending share is forgotten.
    expect(code(() => collector.submit(shares[2] as string, () => false))).toBe("UNSEAL_FAILED");
    expect(collector.progress).toBe(0);
    collector.submit(shares[3] as string, opens);
    expect(code(() => collector.submit(shares[3] as string, opens))).toBe("UNSEAL_SHARE_DUPLICATE");
    expect(code(() => collector.submit(shares[3] as string, opens))).toBe("UNSEAL_SHARE_DUPLICATE");
    expect(code(() => collector.submit(shares[4] as string, opens))).toBe("UNSEAL_LOCKED");
    expect(collector.progress).toBe(1);
    now += UNSEAL_LOCKOUT_MS;
    collector.submit(shares[4] as string, opens);
    expect(collector.submit(shares[1] as string, opens)).toBe(true);
  });

  it("an open that throws (a later step failed) is not counted; the shares can be submitted again", async () => {
    const { shares, collector, opens } = setUp();
    for (let attempt = 0; attempt < UNSEAL_MAX_FAILURES + 1; attempt++) {
      collector.submit(shares[0] as string, opens);
      collector.submit(shares[1] as string, opens);
      await expect(
        collector.submitAsync(shares[2] as string, async () => {
          throw new Error("disk full");
        }),
      ).rejects.toThrow("disk full");
      expect(collector.progress).toBe(0);
    }
    collector.submit(shares[0] as string, opens);
    collector.submit(shares[1] as string, opens);
    expect(await collector.submitAsync(shares[2] as string, async (c) => opens(c))).toBe(true);
  });
});
