/**
 * Tampering with base64url data for tests. Editing the text's last characters can leave the
 * bytes unchanged (the last character carries padding bits), which makes a tamper test pass
 * or fail by chance; these flip a bit of the decoded bytes instead.
 */
export function flipBit(base64url: string, byteIndex = 0): string {
  const bytes = Buffer.from(base64url, "base64url");
  if (bytes.length === 0) throw new Error("nothing to tamper with");
  const index = byteIndex < 0 ? bytes.length + byteIndex : byteIndex;
  bytes[index] = (bytes[index] as number) ^ 1;
  return bytes.toString("base64url");
}

/** A compact JOSE serialization with one bit of its `part`-th segment flipped. */
export function flipSegment(compact: string, part: number, byteIndex = 0): string {
  return compact
    .split(".")
    .map((segment, i) => (i === part ? flipBit(segment, byteIndex) : segment))
    .join(".");
}
