import { spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CheckpointError,
  bf16ToF32,
  decodeSafetensors,
  encodeSafetensors,
  f16ToF32,
  f32ToBf16,
  f32ToF16,
  readSafetensors,
  writeSafetensors,
  type Tensor,
  type TypedArray,
} from '../../../src/engine/checkpoint/safetensors';
import { pythonHas, rng, tempDir } from '../helpers';

const hasNumpy = pythonHas('numpy');

let dir: string;
beforeAll(async () => {
  dir = await tempDir();
});
afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

/** A safetensors image from a raw header string and data bytes. */
function build(
  header: string,
  data: Uint8Array = new Uint8Array(0),
  headerLen?: number,
): Uint8Array {
  const json = new TextEncoder().encode(header);
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerLen ?? json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

const values = (data: TypedArray) => Array.from(data as ArrayLike<number | bigint>);

function bytesOf(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

function expectError(fn: () => unknown, pattern: RegExp, tensor?: string): void {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(CheckpointError);
  const err = caught as CheckpointError;
  expect(err.message).toMatch(pattern);
  expect(err.message.startsWith('test.safetensors: ')).toBe(true);
  expect(err.file).toBe('test.safetensors');
  if (tensor !== undefined) expect(err.tensor).toBe(tensor);
}

const decode = (bytes: Uint8Array) => decodeSafetensors(bytes, 'test.safetensors');

describe('round trips', () => {
  it('F32, including scalar and empty tensors, through a file', async () => {
    const tensors: Record<string, Tensor> = {
      'a.weight': {
        dtype: 'F32',
        shape: [2, 3],
        data: Float32Array.from([1, -2, 3.5, 0, 1e-30, 7]),
      },
      scalar: { dtype: 'F32', shape: [], data: Float32Array.from([42]) },
      empty: { dtype: 'F32', shape: [0, 3], data: new Float32Array(0) },
    };
    const file = path.join(dir, 'f32.safetensors');
    await writeSafetensors(file, tensors, { format: 'pt', note: 'héllo' });
    const { tensors: back, metadata } = await readSafetensors(file);
    expect(metadata).toEqual({ format: 'pt', note: 'héllo' });
    expect([...back.keys()].sort()).toEqual(['a.weight', 'empty', 'scalar']);
    for (const [name, t] of Object.entries(tensors)) {
      const got = back.get(name)!;
      expect(got.dtype).toBe('F32');
      expect(got.shape).toEqual(t.shape);
      expect(values(got.data)).toEqual(values(t.data));
    }
    expect((await fs.readdir(dir)).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('every dtype', () => {
    const tensors: Record<string, Tensor> = {
      f64: { dtype: 'F64', shape: [2], data: Float64Array.from([Math.PI, -1e300]) },
      i64: {
        dtype: 'I64',
        shape: [3],
        data: BigInt64Array.from([-1n, 2n ** 62n + 1n, -(2n ** 63n)]),
      },
      u64: { dtype: 'U64', shape: [1], data: BigUint64Array.from([2n ** 64n - 1n]) },
      i32: { dtype: 'I32', shape: [2], data: Int32Array.from([-(2 ** 31), 2 ** 31 - 1]) },
      u32: { dtype: 'U32', shape: [1], data: Uint32Array.from([2 ** 32 - 1]) },
      i16: { dtype: 'I16', shape: [2], data: Int16Array.from([-32768, 32767]) },
      u16: { dtype: 'U16', shape: [1], data: Uint16Array.from([65535]) },
      i8: { dtype: 'I8', shape: [2], data: Int8Array.from([-128, 127]) },
      u8: { dtype: 'U8', shape: [3], data: Uint8Array.from([0, 128, 255]) },
      bool: { dtype: 'BOOL', shape: [2], data: Uint8Array.from([1, 0]) },
      f16: { dtype: 'F16', shape: [1], data: Uint16Array.from([0x3c00]) },
      bf16: { dtype: 'BF16', shape: [1], data: Uint16Array.from([0x3f80]) },
    };
    const { tensors: back } = decode(encodeSafetensors(tensors));
    for (const [name, t] of Object.entries(tensors)) {
      const got = back.get(name)!;
      expect(got.dtype).toBe(t.dtype);
      expect(got.data.constructor).toBe(t.data.constructor);
      expect(values(got.data)).toEqual(values(t.data));
    }
  });

  it('converts numbers to I64 and floats to F16 on write', () => {
    const bytes = encodeSafetensors({
      ids: { dtype: 'I64', shape: [3], data: Int32Array.from([5, -7, 50256]) },
      h: { dtype: 'F16', shape: [2], data: Float32Array.from([1, -0.5]) },
    });
    const { tensors } = decode(bytes);
    expect(Array.from(tensors.get('ids')!.data as BigInt64Array)).toEqual([5n, -7n, 50256n]);
    expect(values(tensors.get('h')!.data)).toEqual([0x3c00, 0xb800]);
  });

  it('toFloat32 converts F16, BF16 and F64 but leaves integers alone', () => {
    const bytes = encodeSafetensors({
      h: { dtype: 'F16', shape: [2], data: Float32Array.from([1.5, -65504]) },
      b: { dtype: 'BF16', shape: [1], data: Float32Array.from([-2]) },
      d: { dtype: 'F64', shape: [1], data: Float64Array.from([0.25]) },
      i: { dtype: 'I32', shape: [1], data: Int32Array.from([3]) },
    });
    const { tensors } = decodeSafetensors(bytes, 'x', { toFloat32: true });
    for (const name of ['h', 'b', 'd']) {
      expect(tensors.get(name)!.dtype).toBe('F32');
      expect(tensors.get(name)!.data).toBeInstanceOf(Float32Array);
    }
    expect(values(tensors.get('h')!.data)).toEqual([1.5, -65504]);
    expect(values(tensors.get('b')!.data)).toEqual([-2]);
    expect(values(tensors.get('d')!.data)).toEqual([0.25]);
    expect(tensors.get('i')!.dtype).toBe('I32');
  });
});

describe('byte layout', () => {
  it('matches a hand-built file: length prefix, sorted keys, space padding, offsets', () => {
    const bytes = encodeSafetensors(
      {
        b: { dtype: 'F32', shape: [2], data: Float32Array.from([1, 2]) },
        a: { dtype: 'F16', shape: [1, 1], data: Uint16Array.from([0x3c00]) },
        c: { dtype: 'I64', shape: [1], data: BigInt64Array.from([-1n]) },
      },
      { format: 'pt' },
    );
    // Like the Python library: __metadata__ first, then larger dtypes first, then by name.
    const json =
      '{"__metadata__":{"format":"pt"},' +
      '"c":{"dtype":"I64","shape":[1],"data_offsets":[0,8]},' +
      '"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]},' +
      '"a":{"dtype":"F16","shape":[1,1],"data_offsets":[16,18]}}';
    const padded = json + ' '.repeat((8 - (json.length % 8)) % 8);
    expect(padded.length % 8).toBe(0);
    const data = new Uint8Array(18);
    data.set(bytesOf(BigInt64Array.from([-1n])), 0);
    data.set(bytesOf(Float32Array.from([1, 2])), 8);
    data.set([0x00, 0x3c], 16);
    const expected = build(padded, data);
    expect(Array.from(expected.subarray(0, 8))).toEqual([padded.length, 0, 0, 0, 0, 0, 0, 0]);
    expect(Buffer.from(bytes).equals(Buffer.from(expected))).toBe(true);
  });

  it('omits __metadata__ when none is given', () => {
    const bytes = encodeSafetensors({ x: { dtype: 'U8', shape: [1], data: Uint8Array.of(9) } });
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    const header = new TextDecoder().decode(bytes.subarray(8, 8 + n));
    expect(header.trimEnd()).toBe('{"x":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}');
  });

  it('reads an unpadded header with unaligned data (copying) and views aligned data', () => {
    const header = '{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}';
    expect((8 + header.length) % 4).not.toBe(0);
    const unaligned = decode(build(header, bytesOf(Float32Array.from([0.5, -3])))).tensors;
    expect(values(unaligned.get('x')!.data)).toEqual([0.5, -3]);

    const padded = header.padEnd(Math.ceil(header.length / 8) * 8);
    const image = build(padded, bytesOf(Float32Array.from([0.5, -3])));
    const view = decode(image).tensors.get('x')!.data;
    expect(view.buffer).toBe(image.buffer);
    expect(values(view)).toEqual([0.5, -3]);
  });
});

describe('half precision', () => {
  it('decodes and re-encodes every one of the 65536 bit patterns exactly', () => {
    const all = new Uint16Array(65536).map((_, i) => i);
    const back = f32ToF16(f16ToF32(all));
    expect(Buffer.from(bytesOf(back)).equals(Buffer.from(bytesOf(all)))).toBe(true);
  });

  it('handles edge values', () => {
    const cases: [number, number][] = [
      [0, 0x0000],
      [-0, 0x8000],
      [1, 0x3c00],
      [-2, 0xc000],
      [1 / 3, 0x3555],
      [65504, 0x7bff],
      [65519, 0x7bff],
      [65520, 0x7c00], // halfway to 65536: ties to even overflows to inf
      [1e10, 0x7c00],
      [-1e10, 0xfc00],
      [Infinity, 0x7c00],
      [-Infinity, 0xfc00],
      [2 ** -14, 0x0400], // smallest normal
      [1023 * 2 ** -24, 0x03ff], // largest subnormal
      [1023.5 * 2 ** -24, 0x0400], // ties to even rounds up into the normals
      [2 ** -24, 0x0001], // smallest subnormal
      [-(2 ** -24), 0x8001],
      [2 ** -25, 0x0000], // halfway to the smallest subnormal: ties to even gives 0
      [2 ** -25 + 2 ** -40, 0x0001],
      [3 * 2 ** -25, 0x0002], // 1.5 ulp ties to even
      [5 * 2 ** -25, 0x0002], // 2.5 ulp ties to even
      [1e-10, 0x0000],
      [-1e-10, 0x8000],
      [1 + 2 ** -11, 0x3c00], // ties to even (down)
      [1 + 3 * 2 ** -11, 0x3c02], // ties to even (up)
      [1 + 2 ** -11 + 2 ** -20, 0x3c01],
      [2047.5 * 2 ** -11, 0x3c00], // rounds up across a binade
    ];
    const got = f32ToF16(Float32Array.from(cases.map(([x]) => x)));
    expect(Array.from(got).map((b) => b.toString(16))).toEqual(
      cases.map(([, b]) => b.toString(16)),
    );
    const back = f16ToF32(Uint16Array.from(cases.map(([, b]) => b)));
    expect(Object.is(back[1], -0)).toBe(true);
    expect(back[5]).toBe(65504);
    expect(back[15]).toBe(2 ** -24);
  });

  it('keeps NaN a NaN', () => {
    const nan = new Float32Array(new Uint32Array([0x7fc00000, 0xff800001, 0x7f800fff]).buffer);
    for (const bits of f32ToF16(nan)) {
      expect(bits & 0x7c00).toBe(0x7c00);
      expect(bits & 0x3ff).not.toBe(0);
    }
    expect(Number.isNaN(f16ToF32(Uint16Array.of(0x7e00))[0])).toBe(true);
    expect(f16ToF32(Uint16Array.of(0x7c00))[0]).toBe(Infinity);
  });

  it('rounds random floats to the nearest half, ties to even', () => {
    const rand = rng(7);
    const bits = Uint32Array.from({ length: 20000 }, () => Math.floor(rand() * 2 ** 32));
    const xs = new Float32Array(bits.buffer).filter((x) => Math.abs(x) < 65504);
    const hs = f32ToF16(xs);
    const near = f16ToF32(hs);
    for (let i = 0; i < xs.length; i++) {
      const x = xs[i]!;
      const h = hs[i]!;
      const err = Math.abs(near[i]! - x);
      for (const n of [h - 1, h + 1]) {
        if ((n & 0x7fff) >= 0x7c00 || n < 0 || n > 0xffff || (n ^ h) & 0x8000) continue;
        const other = Math.abs(f16ToF32(Uint16Array.of(n))[0]! - x);
        expect(err).toBeLessThanOrEqual(other);
        if (err === other) expect(h & 1).toBe(0);
      }
    }
  });

  it.skipIf(!hasNumpy)('agrees bit for bit with numpy', async () => {
    const rand = rng(11);
    const xs = Float32Array.from({ length: 50000 }, (_, i) => {
      const scale = 2 ** Math.floor(rand() * 50 - 30);
      return (rand() - 0.5) * scale * (i % 7 === 0 ? 1 : 3);
    });
    const input = path.join(dir, 'halves.f32');
    const output = path.join(dir, 'halves.f16');
    await fs.writeFile(input, bytesOf(xs));
    const py = spawnSync('/usr/bin/python3', [
      '-c',
      `import numpy as np, sys; np.fromfile(sys.argv[1], '<f4').astype('<f2').tofile(sys.argv[2])`,
      input,
      output,
    ]);
    expect(py.status, py.stderr.toString()).toBe(0);
    const want = new Uint16Array((await fs.readFile(output)).buffer.slice(0));
    const got = f32ToF16(xs);
    let mismatches = 0;
    for (let i = 0; i < xs.length; i++) if (got[i] !== want[i]) mismatches++;
    expect(mismatches).toBe(0);
  });

  it('bfloat16 rounds to nearest even and keeps NaN', () => {
    const xs = Float32Array.from([1, 1 + 2 ** -8, 1 + 3 * 2 ** -8, -2, 3e38 * 10, NaN]);
    expect(Array.from(f32ToBf16(xs)).map((b) => b.toString(16))).toEqual([
      '3f80',
      '3f80',
      '3f82',
      'c000',
      '7f80',
      '7fc0',
    ]);
    expect(Array.from(bf16ToF32(Uint16Array.of(0x3f82, 0xc000)))).toEqual([1 + 2 ** -6, -2]);
  });
});

describe('validation', () => {
  const okHeader = '{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}';
  const okData = bytesOf(Float32Array.from([1, 2]));

  it('rejects a file shorter than 8 bytes', () => {
    expectError(() => decode(new Uint8Array(5)), /5 bytes, too short/);
  });

  it('rejects a header length beyond the file', () => {
    expectError(() => decode(build(okHeader, okData, 1000)), /header length 1000 .*truncated/);
    const huge = new Uint8Array(16);
    new DataView(huge.buffer).setBigUint64(0, 2n ** 64n - 1n, true);
    expectError(() => decode(huge), /header length 18446744073709551615/);
  });

  it('rejects invalid JSON and non-object headers', () => {
    expectError(() => decode(build('{"x": ', okData)), /not valid UTF-8 JSON/);
    expectError(() => decode(build('[1,2]')), /not a JSON object/);
    expectError(() => decode(build('{"x":5}')), /tensor 'x': header entry is not an object/, 'x');
    expectError(() => decode(build('{"__metadata__":{"a":1}}')), /__metadata__ field 'a'/);
  });

  it('rejects an unknown dtype, naming the tensor and the dtype', () => {
    const header = '{"w.weight":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[0,2]}}';
    expectError(
      () => decode(build(header, new Uint8Array(2))),
      /'w\.weight'.*"F8_E4M3"/,
      'w.weight',
    );
  });

  it('rejects bad shapes', () => {
    for (const shape of ['[-1]', '[1.5]', '"2"', '[null]']) {
      const header = `{"x":{"dtype":"F32","shape":${shape},"data_offsets":[0,0]}}`;
      expectError(() => decode(build(header)), /tensor 'x' has invalid shape/, 'x');
    }
  });

  it('rejects offsets that do not match shape × dtype', () => {
    const header = '{"x":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}';
    expectError(() => decode(build(header, okData)), /span 8 bytes.*\[3\] of F32 needs 12/, 'x');
    const bad = '{"x":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}';
    expectError(() => decode(build(bad, okData)), /invalid data_offsets \[8,0\]/, 'x');
  });

  it('rejects overlaps, gaps and trailing bytes', () => {
    const data = new Uint8Array(16);
    const overlap =
      '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},' +
      '"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}';
    expectError(
      () => decode(build(overlap, data.subarray(0, 12))),
      /'b'.*overlaps tensor 'a'/,
      'b',
    );
    const gap =
      '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},' +
      '"b":{"dtype":"F32","shape":[1],"data_offsets":[12,16]}}';
    expectError(() => decode(build(gap, data)), /'b' starts at 12, leaving a gap of 4/, 'b');
    const late = '{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}';
    expectError(() => decode(build(late, data.subarray(0, 8))), /gap of 4/, 'a');
    expectError(() => decode(build(okHeader, data.subarray(0, 12))), /4 unexpected bytes/);
  });

  it('reports a real file cut short by a few bytes as truncated', async () => {
    const file = path.join(dir, 'cut.safetensors');
    await writeSafetensors(file, {
      'h.0.w': { dtype: 'F32', shape: [4, 4], data: new Float32Array(16) },
      'h.1.w': { dtype: 'F32', shape: [4, 4], data: new Float32Array(16) },
    });
    const full = await fs.readFile(file);
    await fs.writeFile(file, full.subarray(0, full.length - 3));
    await expect(readSafetensors(file)).rejects.toThrow(
      /cut\.safetensors: tensor 'h\.1\.w' needs bytes up to 128 .* only 125 .*truncated/,
    );
    await fs.writeFile(file, full.subarray(0, 20));
    await expect(readSafetensors(file)).rejects.toThrow(
      /header length \d+ is larger than the file \(20 bytes\).*truncated/,
    );
  });

  it('reports a missing file as a CheckpointError', async () => {
    await expect(readSafetensors(path.join(dir, 'nope.safetensors'))).rejects.toThrow(
      CheckpointError,
    );
  });

  it('rejects encoding data whose length does not match the shape', () => {
    expect(() =>
      encodeSafetensors({ x: { dtype: 'F32', shape: [3], data: new Float32Array(2) } }),
    ).toThrow(/'x' has 2 elements but shape \[3\] needs 3/);
  });
});
