/** Half and bfloat16 conversion to and from float32, on raw 16-bit patterns. */

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** Float32 bit pattern → half bit pattern, rounding to nearest even (after numpy's halffloat.c). */
function f32BitsToF16Bits(f: number): number {
  const sign = (f >>> 16) & 0x8000;
  const exp = f & 0x7f800000;
  if (exp >= 0x47800000) {
    const sig = f & 0x007fffff;
    if (exp === 0x7f800000 && sig !== 0) {
      const nan = 0x7c00 | (sig >>> 13);
      return sign | (nan === 0x7c00 ? 0x7e00 : nan); // keep what payload fits, but stay a NaN
    }
    return sign | 0x7c00; // inf, or overflow to inf
  }
  if (exp <= 0x38000000) {
    if (exp < 0x33000000) return sign; // too small even for a subnormal: signed zero
    const e = exp >>> 23;
    let sig = (0x00800000 + (f & 0x007fffff)) >>> (113 - e);
    // Round half to even; the bits shifted out above also count towards "more than half".
    if ((sig & 0x3fff) !== 0x1000 || (f & 0x7ff) !== 0) sig += 0x1000;
    return sign | (sig >>> 13); // a carry into the exponent gives the smallest normal, correctly
  }
  const hexp = (exp - 0x38000000) >>> 13;
  let sig = f & 0x007fffff;
  if ((sig & 0x3fff) !== 0x1000) sig += 0x1000;
  return sign | ((sig >>> 13) + hexp); // a carry may reach 0x7c00 = inf, correctly
}

let f16Table: Uint32Array | undefined;

/** Half bit pattern → float32 bit pattern, for all 65536 halves. */
function f16ToF32Table(): Uint32Array {
  if (f16Table) return f16Table;
  f16Table = new Uint32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = (h & 0x8000) << 16;
    const exp = (h >>> 10) & 0x1f;
    const sig = h & 0x3ff;
    if (exp === 0x1f) {
      f16Table[h] = sign | 0x7f800000 | (sig << 13);
    } else if (exp !== 0) {
      f16Table[h] = sign | ((exp - 15 + 127) << 23) | (sig << 13);
    } else {
      f32[0] = sig * 2 ** -24; // zero or subnormal, exact in float32
      f16Table[h] = sign | u32[0]!;
    }
  }
  return f16Table;
}

export function f32ToF16(src: Float32Array): Uint16Array {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  const out = new Uint16Array(src.length);
  for (let i = 0; i < bits.length; i++) out[i] = f32BitsToF16Bits(bits[i]!);
  return out;
}

export function f16ToF32(src: Uint16Array): Float32Array {
  const table = f16ToF32Table();
  const out = new Float32Array(src.length);
  const bits = new Uint32Array(out.buffer);
  for (let i = 0; i < src.length; i++) bits[i] = table[src[i]!]!;
  return out;
}

export function f32ToBf16(src: Float32Array): Uint16Array {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  const out = new Uint16Array(src.length);
  for (let i = 0; i < bits.length; i++) {
    const f = bits[i]!;
    if ((f & 0x7fffffff) > 0x7f800000)
      out[i] = (f >>> 16) | 0x40; // quiet NaN
    else out[i] = (f + 0x7fff + ((f >>> 16) & 1)) >>> 16; // round half to even
  }
  return out;
}

export function bf16ToF32(src: Uint16Array): Float32Array {
  const out = new Float32Array(src.length);
  const bits = new Uint32Array(out.buffer);
  for (let i = 0; i < src.length; i++) bits[i] = src[i]! << 16;
  return out;
}
