/**
 * PostgreSQL's `hash_bytes_extended` (Bob Jenkins' lookup3, 64-bit output,
 * seeded), the function behind `hashtextextended(text, seed)`, ported
 * exactly so this process hashes a row's text as the server does and the
 * two sides of a digest can be compared without md5 on either.
 *
 * Why it is safe to depend on: hash partitioning stores rows by this
 * function's values (`hashtextextended` is the extended hash support
 * function of text's hash opclass), so PostgreSQL cannot change it without
 * breaking upgraded hash-partitioned tables; it has been the same since
 * PostgreSQL 11. Its result does depend on the server's byte order (words
 * are read in native order): this port is the little-endian one, and the
 * digest checks it against the server before relying on it
 * (`rowHashFor`), falling back to md5 otherwise.
 */

/**
 * Hash `len` bytes of `k` under two 64-bit seeds at once, each given as
 * two 32-bit halves (`seeds` = [hi1, lo1, hi2, lo2]), reading the bytes
 * once: `out` = [hi1, lo1, hi2, lo2] of the results, where
 * `hashtextextended(text, seed)` = `(hi << 32 | lo)` as a signed 64-bit
 * integer when `k` holds the text's UTF-8 bytes.
 */
export function hashBytesExtended2(k: Uint8Array, len: number, seeds: Int32Array, out: Uint32Array): void {
  const init = (0x9e3779b9 + len + 3923095) | 0;
  let a1 = init;
  let b1 = init;
  let c1 = init;
  let a2 = init;
  let b2 = init;
  let c2 = init;
  // A non-zero seed counts as a 12-byte block of its own, its last four bytes zero.
  if (seeds[0] !== 0 || seeds[1] !== 0) {
    a1 = (a1 + seeds[0]!) | 0;
    b1 = (b1 + seeds[1]!) | 0;
    a1 = (a1 - c1) | 0;
    a1 ^= (c1 << 4) | (c1 >>> 28);
    c1 = (c1 + b1) | 0;
    b1 = (b1 - a1) | 0;
    b1 ^= (a1 << 6) | (a1 >>> 26);
    a1 = (a1 + c1) | 0;
    c1 = (c1 - b1) | 0;
    c1 ^= (b1 << 8) | (b1 >>> 24);
    b1 = (b1 + a1) | 0;
    a1 = (a1 - c1) | 0;
    a1 ^= (c1 << 16) | (c1 >>> 16);
    c1 = (c1 + b1) | 0;
    b1 = (b1 - a1) | 0;
    b1 ^= (a1 << 19) | (a1 >>> 13);
    a1 = (a1 + c1) | 0;
    c1 = (c1 - b1) | 0;
    c1 ^= (b1 << 4) | (b1 >>> 28);
    b1 = (b1 + a1) | 0;
  }
  if (seeds[2] !== 0 || seeds[3] !== 0) {
    a2 = (a2 + seeds[2]!) | 0;
    b2 = (b2 + seeds[3]!) | 0;
    a2 = (a2 - c2) | 0;
    a2 ^= (c2 << 4) | (c2 >>> 28);
    c2 = (c2 + b2) | 0;
    b2 = (b2 - a2) | 0;
    b2 ^= (a2 << 6) | (a2 >>> 26);
    a2 = (a2 + c2) | 0;
    c2 = (c2 - b2) | 0;
    c2 ^= (b2 << 8) | (b2 >>> 24);
    b2 = (b2 + a2) | 0;
    a2 = (a2 - c2) | 0;
    a2 ^= (c2 << 16) | (c2 >>> 16);
    c2 = (c2 + b2) | 0;
    b2 = (b2 - a2) | 0;
    b2 ^= (a2 << 19) | (a2 >>> 13);
    a2 = (a2 + c2) | 0;
    c2 = (c2 - b2) | 0;
    c2 ^= (b2 << 4) | (b2 >>> 28);
    b2 = (b2 + a2) | 0;
  }
  let i = 0;
  let x: number;
  let y: number;
  let z: number;
  for (; len - i >= 12; i += 12) {
    // Words are read little-endian: the server's byte order (checked before use).
    x = k[i]! | (k[i + 1]! << 8) | (k[i + 2]! << 16) | (k[i + 3]! << 24);
    y = k[i + 4]! | (k[i + 5]! << 8) | (k[i + 6]! << 16) | (k[i + 7]! << 24);
    z = k[i + 8]! | (k[i + 9]! << 8) | (k[i + 10]! << 16) | (k[i + 11]! << 24);
    a1 = (a1 + x) | 0;
    b1 = (b1 + y) | 0;
    c1 = (c1 + z) | 0;
    a1 = (a1 - c1) | 0;
    a1 ^= (c1 << 4) | (c1 >>> 28);
    c1 = (c1 + b1) | 0;
    b1 = (b1 - a1) | 0;
    b1 ^= (a1 << 6) | (a1 >>> 26);
    a1 = (a1 + c1) | 0;
    c1 = (c1 - b1) | 0;
    c1 ^= (b1 << 8) | (b1 >>> 24);
    b1 = (b1 + a1) | 0;
    a1 = (a1 - c1) | 0;
    a1 ^= (c1 << 16) | (c1 >>> 16);
    c1 = (c1 + b1) | 0;
    b1 = (b1 - a1) | 0;
    b1 ^= (a1 << 19) | (a1 >>> 13);
    a1 = (a1 + c1) | 0;
    c1 = (c1 - b1) | 0;
    c1 ^= (b1 << 4) | (b1 >>> 28);
    b1 = (b1 + a1) | 0;
    a2 = (a2 + x) | 0;
    b2 = (b2 + y) | 0;
    c2 = (c2 + z) | 0;
    a2 = (a2 - c2) | 0;
    a2 ^= (c2 << 4) | (c2 >>> 28);
    c2 = (c2 + b2) | 0;
    b2 = (b2 - a2) | 0;
    b2 ^= (a2 << 6) | (a2 >>> 26);
    a2 = (a2 + c2) | 0;
    c2 = (c2 - b2) | 0;
    c2 ^= (b2 << 8) | (b2 >>> 24);
    b2 = (b2 + a2) | 0;
    a2 = (a2 - c2) | 0;
    a2 ^= (c2 << 16) | (c2 >>> 16);
    c2 = (c2 + b2) | 0;
    b2 = (b2 - a2) | 0;
    b2 ^= (a2 << 19) | (a2 >>> 13);
    a2 = (a2 + c2) | 0;
    c2 = (c2 - b2) | 0;
    c2 ^= (b2 << 4) | (b2 >>> 28);
    b2 = (b2 + a2) | 0;
  }
  // The last 0–11 bytes: byte j into word j / 4 at bit 8 × (j % 4), as the
  // server's little-endian switch adds them — except that bytes 8–10 go
  // one byte higher in c (its lowest byte is left alone). Bytes at distinct
  // bits: adding them one by one is adding the word.
  const rest = len - i;
  x = 0;
  y = 0;
  z = 0;
  if (rest > 10) z += k[i + 10]! << 24;
  if (rest > 9) z += k[i + 9]! << 16;
  if (rest > 8) z += k[i + 8]! << 8;
  if (rest > 7) y += k[i + 7]! << 24;
  if (rest > 6) y += k[i + 6]! << 16;
  if (rest > 5) y += k[i + 5]! << 8;
  if (rest > 4) y += k[i + 4]!;
  if (rest > 3) x += k[i + 3]! << 24;
  if (rest > 2) x += k[i + 2]! << 16;
  if (rest > 1) x += k[i + 1]! << 8;
  if (rest > 0) x += k[i]!;
  a1 = (a1 + x) | 0;
  b1 = (b1 + y) | 0;
  c1 = (c1 + z) | 0;
  a2 = (a2 + x) | 0;
  b2 = (b2 + y) | 0;
  c2 = (c2 + z) | 0;
  c1 ^= b1;
  c1 = (c1 - ((b1 << 14) | (b1 >>> 18))) | 0;
  a1 ^= c1;
  a1 = (a1 - ((c1 << 11) | (c1 >>> 21))) | 0;
  b1 ^= a1;
  b1 = (b1 - ((a1 << 25) | (a1 >>> 7))) | 0;
  c1 ^= b1;
  c1 = (c1 - ((b1 << 16) | (b1 >>> 16))) | 0;
  a1 ^= c1;
  a1 = (a1 - ((c1 << 4) | (c1 >>> 28))) | 0;
  b1 ^= a1;
  b1 = (b1 - ((a1 << 14) | (a1 >>> 18))) | 0;
  c1 ^= b1;
  c1 = (c1 - ((b1 << 24) | (b1 >>> 8))) | 0;
  c2 ^= b2;
  c2 = (c2 - ((b2 << 14) | (b2 >>> 18))) | 0;
  a2 ^= c2;
  a2 = (a2 - ((c2 << 11) | (c2 >>> 21))) | 0;
  b2 ^= a2;
  b2 = (b2 - ((a2 << 25) | (a2 >>> 7))) | 0;
  c2 ^= b2;
  c2 = (c2 - ((b2 << 16) | (b2 >>> 16))) | 0;
  a2 ^= c2;
  a2 = (a2 - ((c2 << 4) | (c2 >>> 28))) | 0;
  b2 ^= a2;
  b2 = (b2 - ((a2 << 14) | (a2 >>> 18))) | 0;
  c2 ^= b2;
  c2 = (c2 - ((b2 << 24) | (b2 >>> 8))) | 0;
  out[0] = b1;
  out[1] = c1;
  out[2] = b2;
  out[3] = c2;
}

/** A 64-bit seed as its two signed 32-bit halves. */
export function seedWords(seed: bigint): [number, number] {
  return [Number(BigInt.asIntN(32, seed >> 32n)), Number(BigInt.asIntN(32, seed))];
}

/** `hashtextextended(text, seed)` of one text, as the server returns it (a signed 64-bit integer). */
export function hashTextExtended(text: string, seed: bigint): bigint {
  const bytes = Buffer.from(text, "utf8");
  const out = new Uint32Array(4);
  hashBytesExtended2(bytes, bytes.length, Int32Array.of(...seedWords(seed), 0, 0), out);
  return BigInt.asIntN(64, (BigInt(out[0]!) << 32n) | BigInt(out[1]!));
}
