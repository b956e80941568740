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
 * Hash `len` bytes of `k` with the 64-bit seed `seedHi:seedLo` (two 32-bit
 * halves) and write the result's high and low 32 bits to `out[0]`, `out[1]`:
 * `hashtextextended(text, seed)` = `(out[0] << 32 | out[1])` as a signed
 * 64-bit integer, when `k` holds the text's UTF-8 bytes.
 */
export function hashBytesExtended(k: Uint8Array, len: number, seedHi: number, seedLo: number, out: Uint32Array): void {
  let a = (0x9e3779b9 + len + 3923095) | 0;
  let b = a;
  let c = a;
  if (seedHi !== 0 || seedLo !== 0) {
    // The seed counts as a 12-byte block of its own, its last four bytes zero.
    a = (a + seedHi) | 0;
    b = (b + seedLo) | 0;
    a = (a - c) | 0;
    a ^= (c << 4) | (c >>> 28);
    c = (c + b) | 0;
    b = (b - a) | 0;
    b ^= (a << 6) | (a >>> 26);
    a = (a + c) | 0;
    c = (c - b) | 0;
    c ^= (b << 8) | (b >>> 24);
    b = (b + a) | 0;
    a = (a - c) | 0;
    a ^= (c << 16) | (c >>> 16);
    c = (c + b) | 0;
    b = (b - a) | 0;
    b ^= (a << 19) | (a >>> 13);
    a = (a + c) | 0;
    c = (c - b) | 0;
    c ^= (b << 4) | (b >>> 28);
    b = (b + a) | 0;
  }
  let i = 0;
  for (; len - i >= 12; i += 12) {
    a = (a + (k[i]! | (k[i + 1]! << 8) | (k[i + 2]! << 16) | (k[i + 3]! << 24))) | 0;
    b = (b + (k[i + 4]! | (k[i + 5]! << 8) | (k[i + 6]! << 16) | (k[i + 7]! << 24))) | 0;
    c = (c + (k[i + 8]! | (k[i + 9]! << 8) | (k[i + 10]! << 16) | (k[i + 11]! << 24))) | 0;
    a = (a - c) | 0;
    a ^= (c << 4) | (c >>> 28);
    c = (c + b) | 0;
    b = (b - a) | 0;
    b ^= (a << 6) | (a >>> 26);
    a = (a + c) | 0;
    c = (c - b) | 0;
    c ^= (b << 8) | (b >>> 24);
    b = (b + a) | 0;
    a = (a - c) | 0;
    a ^= (c << 16) | (c >>> 16);
    c = (c + b) | 0;
    b = (b - a) | 0;
    b ^= (a << 19) | (a >>> 13);
    a = (a + c) | 0;
    c = (c - b) | 0;
    c ^= (b << 4) | (b >>> 28);
    b = (b + a) | 0;
  }
  // The last 0–11 bytes: byte j into word j / 4 at bit 8 × (j % 4), as the
  // server's little-endian switch adds them — except that bytes 8–10 go
  // one byte higher in c (its lowest byte is left alone).
  const rest = len - i;
  if (rest > 10) c = (c + (k[i + 10]! << 24)) | 0;
  if (rest > 9) c = (c + (k[i + 9]! << 16)) | 0;
  if (rest > 8) c = (c + (k[i + 8]! << 8)) | 0;
  if (rest > 7) b = (b + (k[i + 7]! << 24)) | 0;
  if (rest > 6) b = (b + (k[i + 6]! << 16)) | 0;
  if (rest > 5) b = (b + (k[i + 5]! << 8)) | 0;
  if (rest > 4) b = (b + k[i + 4]!) | 0;
  if (rest > 3) a = (a + (k[i + 3]! << 24)) | 0;
  if (rest > 2) a = (a + (k[i + 2]! << 16)) | 0;
  if (rest > 1) a = (a + (k[i + 1]! << 8)) | 0;
  if (rest > 0) a = (a + k[i]!) | 0;
  c ^= b;
  c = (c - ((b << 14) | (b >>> 18))) | 0;
  a ^= c;
  a = (a - ((c << 11) | (c >>> 21))) | 0;
  b ^= a;
  b = (b - ((a << 25) | (a >>> 7))) | 0;
  c ^= b;
  c = (c - ((b << 16) | (b >>> 16))) | 0;
  a ^= c;
  a = (a - ((c << 4) | (c >>> 28))) | 0;
  b ^= a;
  b = (b - ((a << 14) | (a >>> 18))) | 0;
  c ^= b;
  c = (c - ((b << 24) | (b >>> 8))) | 0;
  out[0] = b;
  out[1] = c;
}

/** `hashtextextended(text, seed)` of one text, as the server returns it (a signed 64-bit integer). */
export function hashTextExtended(text: string, seed: bigint): bigint {
  const bytes = Buffer.from(text, "utf8");
  const out = new Uint32Array(2);
  hashBytesExtended(bytes, bytes.length, Number(BigInt.asIntN(32, seed >> 32n)), Number(BigInt.asIntN(32, seed)), out);
  return BigInt.asIntN(64, (BigInt(out[0]!) << 32n) | BigInt(out[1]!));
}
