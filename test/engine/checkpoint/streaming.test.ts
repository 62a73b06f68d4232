/**
 * Loading never needs a file-sized buffer: a sparse checkpoint larger than 4 GiB (a tiny GPT-2's
 * real tensors, then a 4.4 GB attention-mask buffer that is all hole) loads its parameters with
 * bounded reads and without the process's array buffers growing by more than the parameters;
 * positioned reads past 4 GiB; float conversion in chunks of any size; the streaming writer
 * (byte-identical to the in-memory encoder) and the streaming copy an import uses.
 */
import * as nodeFs from 'node:fs';
import { promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  copyGpt2Weights,
  loadGpt2Weights,
  saveGpt2Weights,
} from '../../../src/engine/checkpoint/gpt2';
import {
  encodeSafetensors,
  f16ToF32,
  f32ToBf16,
  f32ToF16,
  planLayout,
  READ_CHUNK_BYTES,
  SafetensorsReader,
  withSafetensors,
  writeSafetensors,
  writeSafetensorsStream,
  type Tensor,
} from '../../../src/engine/checkpoint/safetensors';
import { paramShapes } from '../../../src/engine/model/params';
import { expectSameFloats, randomFloats, randomParams, tempDir, tinyConfig } from '../helpers';

let dir: string;
beforeAll(async () => {
  dir = await tempDir();
});
afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

/** The largest positioned read, and the bytes read, of files opened while `fn` runs. */
async function measureReads<T>(fn: () => Promise<T>) {
  let largest = 0;
  let total = 0;
  const realOpen = nodeFs.promises.open.bind(nodeFs.promises);
  const spy = vi.spyOn(nodeFs.promises, 'open').mockImplementation((async (
    ...args: Parameters<typeof realOpen>
  ) => {
    const handle: FileHandle = await realOpen(...args);
    const realRead = handle.read.bind(handle) as (...a: unknown[]) => Promise<unknown>;
    (handle as unknown as { read: unknown }).read = (...a: unknown[]) => {
      largest = Math.max(largest, a[2] as number);
      total += a[2] as number;
      return realRead(...a);
    };
    return handle;
  }) as typeof realOpen);
  try {
    return { result: await fn(), largest, total };
  } finally {
    spy.mockRestore();
  }
}

describe('a sparse checkpoint larger than 4 GiB', () => {
  const cfg = tinyConfig(); // V=32 T=16 L=2 H=2 C=16
  const params = randomParams(cfg, 3);
  const N = 66_000; // h.0.attn.bias [1, 1, N, N] BOOL: 4.36 GB, past 2^32
  const tail = Uint8Array.from({ length: 256 }, (_, i) => i % 2); // h.1.attn.bias, after it
  let file: string;

  beforeAll(async () => {
    file = path.join(dir, 'huge.safetensors');
    const tensors = [...paramShapes(cfg)].map(([name, shape]) => ({
      name: `transformer.${name}`,
      dtype: 'F32' as const,
      shape,
      byteLength: params.get(name)!.byteLength,
    }));
    // the masks sort last (BOOL after F32): the first is the file's hole, the second ends it
    tensors.push(
      { name: 'h.0.attn.bias', dtype: 'BOOL' as never, shape: [1, 1, N, N], byteLength: N * N },
      { name: 'h.1.attn.bias', dtype: 'BOOL' as never, shape: [1, 1, 16, 16], byteLength: 256 },
    );
    const { header, order } = planLayout(tensors, { format: 'pt' }, file);
    const handle = await fs.open(file, 'w');
    try {
      await handle.write(header, 0, header.length, 0);
      for (const t of order) {
        const data = params.get(t.name.slice('transformer.'.length));
        if (data) {
          await handle.write(
            new Uint8Array(data.buffer),
            0,
            data.byteLength,
            header.length + t.begin,
          );
        }
      }
      const last = order.at(-1)!;
      expect(last.name).toBe('h.1.attn.bias');
      // sparse: the 4.4 GB between take no disk
      await handle.write(tail, 0, tail.length, header.length + last.begin);
      expect(header.length + last.begin).toBeGreaterThan(4 * 2 ** 30);
    } finally {
      await handle.close();
    }
  });

  it('loads the parameters with bounded reads, never a file-sized buffer', async () => {
    const before = process.memoryUsage().arrayBuffers;
    const { result, largest, total } = await measureReads(() => loadGpt2Weights(file, cfg));
    const grew = process.memoryUsage().arrayBuffers - before;
    for (const [name, want] of params) expectSameFloats(result.params.get(name), want, name);
    expect(result.extra.size).toBe(0);
    let bytes = 0;
    for (const p of params.values()) bytes += p.byteLength;
    expect(largest).toBeLessThanOrEqual(READ_CHUNK_BYTES);
    // the header and the parameters: not a byte of the 4.4 GB of masks
    expect(total).toBeLessThan(bytes + 4096);
    expect(grew).toBeLessThan(64 * 2 ** 20);
  });

  it('reads a tensor past 4 GiB at its offset', async () => {
    const { result, total } = await measureReads(() =>
      withSafetensors(file, {}, async (r) => {
        expect(r.entry('h.0.attn.bias').shape).toEqual([1, 1, N, N]);
        return r.readRaw('h.1.attn.bias');
      }),
    );
    expect(Array.from(result as Uint8Array)).toEqual(Array.from(tail));
    expect(total).toBeLessThan(4096 + 256); // the length, the header, the 256 bytes
  });

  it('an import-style copy streams it too, leaving the buffer behind', async () => {
    const out = path.join(dir, 'copy.safetensors');
    const { largest } = await measureReads(() => copyGpt2Weights(file, out, cfg, { a: 'b' }));
    expect(largest).toBeLessThanOrEqual(READ_CHUNK_BYTES);
    const want = path.join(dir, 'want.safetensors');
    await saveGpt2Weights(want, cfg, params, { metadata: { a: 'b' } });
    expect((await fs.readFile(out)).equals(await fs.readFile(want))).toBe(true);
  });
});

describe('chunked reading and writing', () => {
  const f32 = randomFloats(257, 1, 3);
  const tensors: Record<string, Tensor> = {
    half: { dtype: 'F16', shape: [257], data: f32ToF16(f32) },
    brain: { dtype: 'BF16', shape: [257], data: f32ToBf16(f32) },
    wide: { dtype: 'F64', shape: [257], data: Float64Array.from(f32) },
    rows: { dtype: 'F32', shape: [9, 5], data: randomFloats(45, 2) },
  };

  it('converts F16, BF16 and F64 to float32 the same in chunks of any size and at any start', async () => {
    const file = path.join(dir, 'kinds.safetensors');
    await writeSafetensors(file, tensors);
    await withSafetensors(file, {}, async (r) => {
      for (const name of ['half', 'brain', 'wide']) {
        const whole = await r.readFloat32(name);
        for (const chunk of [2, 6, 64, 1000]) {
          expect(await r.readFloat32(name, chunk), `${name} in ${chunk}-byte chunks`).toEqual(
            whole,
          );
          const part = new Float32Array(100);
          await r.readFloat32Into(name, part, 101, chunk);
          expect(part).toEqual(whole.subarray(101, 201));
        }
      }
      expectSameFloats(await r.readFloat32('half'), f16ToF32(f32ToF16(f32)), 'half');
      // rows in pieces of a multiple of 4 rows (at least one multiple), capped in bytes
      const seen: number[] = [];
      const values: number[] = [];
      await r.forEachRows(
        'rows',
        (v, first) => {
          seen.push(first);
          values.push(...v);
        },
        { rowsMultiple: 4, maxBytes: 5 * 4 * 5 },
      );
      expect(seen).toEqual([0, 4, 8]);
      expect(Float32Array.from(values)).toEqual(tensors.rows!.data);
      await expect(r.readFloat32Into('rows', new Float32Array(3), 44)).rejects.toThrow(RangeError);
    });
  });

  it("the streaming writer gives the in-memory encoder's bytes, and refuses a wrong count", async () => {
    const file = path.join(dir, 'streamed.safetensors');
    const plans = Object.entries(tensors).map(([name, t]) => ({
      name,
      dtype: t.dtype,
      shape: t.shape,
    }));
    await writeSafetensorsStream(file, plans, { k: 'v' }, async (t, sink) => {
      const d = tensors[t.name]!.data;
      const bytes = new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
      for (let i = 0; i < bytes.length; i += 7) await sink(bytes.subarray(i, i + 7));
    });
    expect((await fs.readFile(file)).equals(encodeSafetensors(tensors, { k: 'v' }))).toBe(true);

    // writeSafetensors (tensors in memory, streamed out one by one): the same bytes, a float32
    // array stored as F16 converted on the way
    const written = path.join(dir, 'written.safetensors');
    const asHalf: Record<string, Tensor> = {
      ...tensors,
      narrowed: { dtype: 'F16', shape: [2, 3], data: randomFloats(6, 3) },
    };
    await writeSafetensors(written, asHalf, { k: 'v' });
    expect((await fs.readFile(written)).equals(encodeSafetensors(asHalf, { k: 'v' }))).toBe(true);

    const bad = path.join(dir, 'short.safetensors');
    await expect(
      writeSafetensorsStream(bad, plans, undefined, async (t, sink) => {
        if (t.name !== 'half') await sink(new Uint8Array(1));
      }),
    ).rejects.toThrow(/short\.safetensors: tensor '\w+' got 1 of its \d+ bytes/);
    await expect(fs.stat(bad)).rejects.toThrow(/ENOENT/); // nothing left behind
    expect((await fs.readdir(dir)).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('SafetensorsReader.open refuses from the header and closes the file', async () => {
    const file = path.join(dir, 'kinds2.safetensors');
    await writeSafetensors(file, tensors);
    await expect(
      SafetensorsReader.open(file, {
        inspect: () => {
          throw new Error('not this one');
        },
      }),
    ).rejects.toThrow(/kinds2\.safetensors: cannot read: not this one/);
  });
});
