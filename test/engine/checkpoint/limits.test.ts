/**
 * Checkpoint readers check before they allocate: a safetensors file is read header first (its
 * length and every tensor's dtype, shape and data_offsets checked against the file's size before
 * any tensor is read, then each tensor read on its own), and config.json's sizes are checked
 * against the backend's memory before anything is sized from them.
 */
import * as nodeFs from 'node:fs';
import { promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import * as path from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { configSizeProblem } from '../../../src/engine/checkpoint/config';
import type { GPTConfig } from '../../../src/engine/model/config';
import {
  fromHfConfigJson,
  loadGpt2Weights,
  readHfConfig,
  saveGpt2Weights,
  toHfConfigJson,
} from '../../../src/engine/checkpoint/gpt2';
import {
  CheckpointError,
  decodeSafetensors,
  encodeSafetensors,
  readSafetensors,
  writeSafetensors,
  type Tensor,
} from '../../../src/engine/checkpoint/safetensors';
import { initBackend } from '../../../src/engine/backend';
import { countParams, initParams, paramShapes } from '../../../src/engine/model/params';
import { checkpointError, GPT2_SMALL, GPT2_SMALL_PARAMS, tempDir, tinyConfig } from '../helpers';

const GiB = 2 ** 30;

let dir: string;
beforeAll(async () => {
  dir = await tempDir();
});
afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

/** Every positioned read readSafetensors makes: how many bytes, into how large a buffer. */
interface Read {
  length: number;
  buffer: number;
}

/** Records the reads of the files opened while `fn` runs. */
async function recordReads<T>(fn: () => Promise<T>): Promise<{ result: T; reads: Read[] }> {
  const reads: Read[] = [];
  const realOpen = nodeFs.promises.open.bind(nodeFs.promises);
  const spy = vi.spyOn(nodeFs.promises, 'open').mockImplementation((async (
    ...args: Parameters<typeof realOpen>
  ) => {
    const handle: FileHandle = await realOpen(...args);
    const realRead = handle.read.bind(handle) as (...a: unknown[]) => Promise<unknown>;
    (handle as unknown as { read: unknown }).read = (
      buf: Uint8Array,
      off: number,
      len: number,
      pos: number,
    ) => {
      reads.push({ length: len, buffer: buf.byteLength });
      return realRead(buf, off, len, pos);
    };
    return handle;
  }) as typeof realOpen);
  try {
    return { result: await fn(), reads };
  } finally {
    spy.mockRestore();
  }
}

/** A file: 8-byte header length (`claimed`, default the header's), the header, `data`. */
async function rawFile(
  name: string,
  header: string,
  data: Uint8Array | number = 0,
  claimed?: bigint,
): Promise<string> {
  const json = Buffer.from(header);
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(claimed ?? BigInt(json.length));
  const file = path.join(dir, name);
  const bytes = typeof data === 'number' ? Buffer.alloc(data) : Buffer.from(data);
  await fs.writeFile(file, Buffer.concat([prefix, json, bytes]));
  return file;
}

describe('safetensors: the header is checked before anything is read', () => {
  it('a 3 GiB file with a garbage header fails at once, having read 8 bytes', async () => {
    const file = path.join(dir, 'model.safetensors');
    await fs.writeFile(file, Buffer.from('\x00\x00\x00\xc0\x00\x00\x00\x00{garbage', 'latin1'));
    await fs.truncate(file, 3 * GiB); // sparse: no disk is used
    try {
      const t0 = performance.now();
      const { result, reads } = await recordReads(() => checkpointError(readSafetensors(file)));
      expect(performance.now() - t0).toBeLessThan(500);
      expect(result.message).toBe(
        `${file}: header length 3221225472 does not fit in the file (3221225472 bytes, 8 of them ` +
          'the length itself) and runs past its end: the file is truncated or not a safetensors file',
      );
      expect(reads).toEqual([{ length: 8, buffer: 8 }]);

      // a length past the file itself, as in the issue
      const fd = await fs.open(file, 'r+');
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(3n * 2n ** 31n);
      await fd.write(len, 0, 8, 0);
      await fd.close();
      const again = await recordReads(() => checkpointError(readSafetensors(file)));
      expect(again.result.message).toMatch(
        /model\.safetensors: header length 6442450944 is larger than the file \(3221225472 bytes\)/,
      );
      expect(again.reads).toEqual([{ length: 8, buffer: 8 }]);

      // a length that fits the file but not the 100 MB cap is not read either
      len.writeBigUInt64LE(200_000_000n);
      await fs.writeFile(file, len);
      await fs.truncate(file, 3 * GiB);
      const capped = await recordReads(() => checkpointError(readSafetensors(file)));
      expect(capped.result.message).toMatch(
        /model\.safetensors: header length 200000000 exceeds the 100000000-byte limit/,
      );
      expect(capped.reads).toEqual([{ length: 8, buffer: 8 }]);
    } finally {
      await fs.rm(file, { force: true });
    }
  });

  it('offsets past the end name the file, the tensor and the data section, reading no data', async () => {
    const name = 'transformer.h.0.attn.c_attn.weight';
    const header = JSON.stringify({
      [name]: { dtype: 'U8', shape: [99999], data_offsets: [0, 99999] },
    });
    const file = await rawFile('past.safetensors', header, 4096);
    const { result, reads } = await recordReads(() => checkpointError(readSafetensors(file)));
    expect(result.message).toMatch(
      new RegExp(
        `past\\.safetensors: tensor '${name.replace(/\./g, '\\.')}' needs bytes up to 99999 .*` +
          `data_offsets \\[0, 99999\\] run past the data section of 4096 bytes.*truncated`,
      ),
    );
    expect(result.tensor).toBe(name);
    // the length, then the header: nothing of the data section
    expect(reads.map((r) => r.length)).toEqual([8, Buffer.byteLength(header)]);
  });

  it('refuses overlapping offsets, a byte count that does not match the shape, and bad shapes', async () => {
    const overlap = await rawFile(
      'overlap.safetensors',
      JSON.stringify({
        a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
        b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] },
      }),
      12,
    );
    const o = await checkpointError(readSafetensors(overlap));
    expect(o.message).toMatch(/overlap\.safetensors: tensor 'b' .*overlaps tensor 'a'/);
    expect(o.tensor).toBe('b');

    const mismatch = await rawFile(
      'mismatch.safetensors',
      JSON.stringify({ w: { dtype: 'F32', shape: [3, 3], data_offsets: [0, 32] } }),
      32,
    );
    expect((await checkpointError(readSafetensors(mismatch))).message).toMatch(
      /mismatch\.safetensors: tensor 'w': data_offsets \[0, 32\] span 32 bytes, but shape \[3, 3\] of F32 needs 36/,
    );

    for (const shape of [[-1], [2 ** 53], [1e6, 1e6, 1e6], [1.5], [1e400]]) {
      const file = await rawFile(
        'shape.safetensors',
        `{"w":{"dtype":"F32","shape":${JSON.stringify(shape)},"data_offsets":[0,4]}}`,
        4,
      );
      const { result, reads } = await recordReads(() => checkpointError(readSafetensors(file)));
      expect(result.message).toMatch(/shape\.safetensors: tensor 'w' has invalid shape/);
      expect(reads.length).toBe(2);
    }
  });

  it('a file cut short after its size was read is reported as truncated, naming the tensor', async () => {
    const file = path.join(dir, 'shrinks.safetensors');
    await writeSafetensors(file, { w: { dtype: 'F32', shape: [64], data: new Float32Array(64) } });
    const { size } = await fs.stat(file);
    await fs.truncate(file, size - 16);
    const realOpen = nodeFs.promises.open.bind(nodeFs.promises);
    const spy = vi.spyOn(nodeFs.promises, 'open').mockImplementation((async (
      ...args: Parameters<typeof realOpen>
    ) => {
      const handle = await realOpen(...args);
      // the size as it was when the reader looked, before the file was cut
      (handle as unknown as { stat: unknown }).stat = async () => ({ size });
      return handle;
    }) as typeof realOpen);
    try {
      const err = await checkpointError(readSafetensors(file));
      expect(err.message).toBe(
        `${file}: tensor 'w': the file ended after ${size - 16} bytes (it is truncated, or was ` +
          'cut while being read)',
      );
      expect(err.tensor).toBe('w');
    } finally {
      spy.mockRestore();
    }
  });

  it('a well-formed file round-trips, one positioned read per tensor', async () => {
    const tensors: Record<string, Tensor> = {
      'transformer.wte.weight': {
        dtype: 'F32',
        shape: [5, 3],
        data: Float32Array.from({ length: 15 }, (_, i) => i / 7),
      },
      half: { dtype: 'F16', shape: [3], data: Uint16Array.of(0x3c00, 0xc000, 0x7bff) },
      odd: { dtype: 'U8', shape: [3], data: Uint8Array.of(1, 2, 3) },
      ids: { dtype: 'I64', shape: [2], data: BigInt64Array.of(-1n, 2n ** 40n) },
      empty: { dtype: 'F64', shape: [0, 4], data: new Float64Array(0) },
    };
    const file = path.join(dir, 'ok.safetensors');
    await writeSafetensors(file, tensors, { step: '3' });
    const bytes = await fs.readFile(file);
    const { result, reads } = await recordReads(() => readSafetensors(file));
    const inMemory = decodeSafetensors(new Uint8Array(bytes), file);
    expect(result.metadata).toEqual({ step: '3' });
    expect([...result.tensors.keys()]).toEqual([...inMemory.tensors.keys()]);
    for (const [name, t] of Object.entries(tensors)) {
      const got = result.tensors.get(name)!;
      expect(got.dtype).toBe(t.dtype);
      expect(got.shape).toEqual(t.shape);
      expect(Array.from(got.data as ArrayLike<number | bigint>)).toEqual(
        Array.from(t.data as ArrayLike<number | bigint>),
      );
      // each tensor owns a buffer of exactly its size, not a view of a whole-file buffer
      expect(got.data.buffer.byteLength).toBe(got.data.byteLength);
    }
    // the length, the header, then one read per non-empty tensor, each into its own buffer
    expect(reads.length).toBe(2 + 4);
    expect(reads.reduce((a, r) => a + r.length, 0)).toBe(bytes.length);
    const headerLen = Number(bytes.readBigUInt64LE(0));
    const sizes = [8, headerLen, ...Object.values(tensors).map((t) => t.data.byteLength)];
    for (const r of reads) expect(sizes).toContain(r.buffer);
    // F16 read as float32
    const f32 = await readSafetensors(file, { toFloat32: true });
    expect(Array.from(f32.tensors.get('half')!.data as Float32Array)).toEqual([1, -2, 65504]);
  });
});

describe('GPT-2 weights are checked against the config from the header', () => {
  it('a file for another model is refused without reading its tensors', async () => {
    const cfg = tinyConfig(); // V=32 T=16 L=2 H=2 C=16
    const file = path.join(dir, 'gpt2.safetensors');
    await saveGpt2Weights(file, cfg, initParams(cfg, 1));
    const wider = await recordReads(() =>
      checkpointError(loadGpt2Weights(file, { ...cfg, nEmbd: 32 })),
    );
    expect(wider.result.message).toMatch(
      /gpt2\.safetensors: tensor 'wte\.weight' has shape \[32, 16\], expected \[32, 32\]/,
    );
    expect(wider.reads.length).toBe(2);
    const deeper = await recordReads(() =>
      checkpointError(loadGpt2Weights(file, { ...cfg, nLayer: 3 })),
    );
    expect(deeper.result.message).toMatch(
      /missing tensors h\.2\.ln_1\.weight.*it says n_layer=3, but the weights are for n_layer=2/,
    );
    expect(deeper.reads.length).toBe(2);
    // and the right config reads every tensor
    const ok = await recordReads(() => loadGpt2Weights(file, cfg));
    expect(ok.result.params.size).toBe(countParamTensors(cfg));
    expect(ok.reads.length).toBe(2 + countParamTensors(cfg));
  });
});

/** GPT-2's parameter tensors: wte, wpe, 12 per layer, ln_f's two. */
const countParamTensors = (cfg: GPTConfig) => 2 + 12 * cfg.nLayer + 2;

describe('safetensors: fuzzed headers fail cleanly', () => {
  const FILE = 'fuzz.safetensors';

  /** A clean failure: a CheckpointError whose message starts with the file. */
  function clean(err: unknown, file: string): boolean {
    return err instanceof CheckpointError && err.message.startsWith(`${file}: `);
  }

  it('arbitrary bytes: decode returns or throws a CheckpointError naming the file', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 300 }),
        fc.option(fc.bigUint64Array({ minLength: 1, maxLength: 1 })),
        (bytes, len) => {
          const image = new Uint8Array(Math.max(bytes.length, 8));
          image.set(bytes);
          if (len) new DataView(image.buffer).setBigUint64(0, len[0]! % 400n, true);
          try {
            decodeSafetensors(image, FILE);
          } catch (err) {
            return clean(err, FILE);
          }
          return true;
        },
      ),
      { numRuns: 300 },
    );
  });

  const dim = fc.oneof(
    fc.nat(16),
    fc.constantFrom(-1, 1.5, 2 ** 31, 2 ** 53, 1e300, Number.MAX_SAFE_INTEGER),
  );
  const offset = fc.oneof(
    fc.nat(256),
    fc.constantFrom(-8, 0.5, 2 ** 32, 2 ** 53, Number.MAX_SAFE_INTEGER, 1e300),
  );
  const entry = fc.record({
    dtype: fc.oneof(
      fc.constantFrom('F32', 'F16', 'BF16', 'F64', 'I64', 'U8', 'BOOL', 'I32'),
      fc.string({ maxLength: 4 }),
    ),
    shape: fc.oneof(fc.array(dim, { maxLength: 4 }), fc.jsonValue({ maxDepth: 1 })),
    data_offsets: fc.oneof(fc.tuple(offset, offset), fc.jsonValue({ maxDepth: 1 })),
  });
  const header = fc.oneof(
    fc.dictionary(fc.string({ maxLength: 8 }), fc.oneof(entry, fc.jsonValue({ maxDepth: 2 })), {
      maxKeys: 4,
    }),
    fc.jsonValue({ maxDepth: 3 }),
  );

  it('arbitrary headers on disk: a clean error naming the file, no buffer past the file', async () => {
    await fc.assert(
      fc.asyncProperty(
        header,
        fc.nat(512),
        fc.option(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), { freq: 4 }),
        async (json, dataLen, claimed) => {
          const text = JSON.stringify(json) ?? 'null';
          const file = await rawFile(FILE, text, dataLen, claimed ?? undefined);
          const size = (await fs.stat(file)).size;
          const { result, reads } = await recordReads(async () => {
            try {
              await readSafetensors(file);
              return true;
            } catch (err) {
              return clean(err, file);
            }
          });
          expect(result).toBe(true);
          for (const r of reads) expect(r.buffer).toBeLessThanOrEqual(size);
          expect(reads.reduce((a, r) => a + r.length, 0)).toBeLessThanOrEqual(size);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('valid files with random tensors always read back', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.tuple(
            fc.string({ minLength: 1, maxLength: 6 }),
            fc.array(fc.nat(5), { maxLength: 3 }),
          ),
          {
            maxLength: 5,
          },
        ),
        async (specs) => {
          const tensors = new Map<string, Tensor>();
          for (const [name, shape] of specs) {
            if (name === '__metadata__') continue;
            const n = shape.reduce((a, b) => a * b, 1);
            tensors.set(name, {
              dtype: 'F32',
              shape,
              data: Float32Array.from({ length: n }, (_, i) => i),
            });
          }
          const file = path.join(dir, FILE);
          await fs.writeFile(file, encodeSafetensors(tensors));
          const back = await readSafetensors(file);
          expect(back.tensors.size).toBe(tensors.size);
          for (const [name, t] of tensors) {
            expect(Array.from(back.tensors.get(name)!.data as Float32Array)).toEqual(
              Array.from(t.data as Float32Array),
            );
          }
        },
      ),
      { numRuns: 100 },
    );
  });
});

describe('config.json: sizes are checked before anything is allocated', () => {
  // readHfConfig checks against the running backend: the wasm heap's 4 GiB
  beforeAll(async () => {
    await initBackend('wasm');
  });

  async function configError(fields: Record<string, unknown>): Promise<string> {
    const file = path.join(dir, 'config.json');
    await fs.writeFile(file, JSON.stringify({ ...toHfConfigJson(GPT2_SMALL), ...fields }));
    const t0 = performance.now();
    const err = await checkpointError(readHfConfig(file));
    expect(performance.now() - t0).toBeLessThan(2000);
    expect(err.message.startsWith(`${file}: `)).toBe(true);
    return err.message.slice(file.length + 2);
  }

  it('counts parameters in closed form, as the model does', () => {
    for (const cfg of [
      GPT2_SMALL,
      { ...GPT2_SMALL, nLayer: 0 },
      { ...GPT2_SMALL, vocabSize: 65, blockSize: 8 },
    ]) {
      const sizes = [...paramShapes(cfg).values()].map((s) => s.reduce((a, b) => a * b, 1));
      expect(countParams(cfg)).toBe(sizes.reduce((a, b) => a + b, 0));
    }
    expect(countParams(GPT2_SMALL)).toBe(GPT2_SMALL_PARAMS);
  });

  it('n_layer 1e9: refused at once, naming the field, the size and the backend', async () => {
    expect(await configError({ n_layer: 1e9 })).toBe(
      'n_layer 1000000000 gives 7.1e15 parameters (28 PB of float32, 7.5 PB even as q8); the wasm backend can hold at most 4 GiB',
    );
  });

  it('n_embd 1.2e9 and vocab_size 1e12 name their own field', async () => {
    expect(await configError({ n_embd: 1.2e9 })).toMatch(
      /^n_embd 1200000000 gives 2\.1e20 parameters \(829 EB of float32, [\d.]+ EB even as q8\); the wasm backend can hold at most 4 GiB$/,
    );
    expect(await configError({ vocab_size: 1e12 })).toMatch(
      /^vocab_size 1000000000000 gives 7\.7e14 parameters \([\d.]+ PB of float32, 742 TiB even as q8\); the wasm backend/,
    );
    expect(await configError({ n_positions: 1e9, n_ctx: 1e9 })).toMatch(
      /^n_positions 1000000000 gives/,
    );
  });

  it('n_embd not divisible by n_head, negative and non-integer fields', async () => {
    expect(await configError({ n_embd: 770 })).toBe('n_embd (770) is not divisible by n_head (12)');
    expect(await configError({ n_layer: -1 })).toBe(
      "field 'n_layer' must be a positive integer, got -1",
    );
    expect(await configError({ n_head: 2.5 })).toBe(
      "field 'n_head' must be a positive integer, got 2.5",
    );
    expect(await configError({ vocab_size: 1e300 })).toBe(
      "field 'vocab_size' must be a positive integer, got 1e+300",
    );
    expect(await configError({ n_embd: '768' })).toBe(
      'field \'n_embd\' must be a positive integer, got "768"',
    );
  });

  it('a field past any sane bound is refused even when the weights would fit', async () => {
    expect(await configError({ n_positions: 1e7, n_ctx: 1e7, n_embd: 16, n_head: 2 })).toBe(
      'n_positions 10000000 is larger than the 1048576 this engine supports',
    );
    expect(await configError({ n_layer: 5000, n_embd: 8, n_head: 2 })).toBe(
      'n_layer 5000 is larger than the 1024 this engine supports',
    );
  });

  it('GPT-2 itself fits the wasm budget; without a backend the budget is the machine memory', async () => {
    const file = path.join(dir, 'gpt2-config.json');
    await fs.writeFile(file, JSON.stringify(toHfConfigJson(GPT2_SMALL)));
    expect(await readHfConfig(file)).toEqual(GPT2_SMALL);
    expect(fromHfConfigJson(toHfConfigJson(GPT2_SMALL), 'config.json')).toEqual(GPT2_SMALL);
    expect(configSizeProblem({ ...GPT2_SMALL, nLayer: 1e6 })).toMatch(
      /^n_layer 1000000 gives 7\.1e12 parameters \(26 TiB of float32, [\d.]+ TiB even as q8\); this machine's memory can hold at most [\d.]+ (GiB|TiB)$/,
    );
    expect(
      configSizeProblem(GPT2_SMALL, { bytes: 100 * 2 ** 20, holder: 'the webgpu backend' }),
    ).toBe(
      'n_embd 768 gives 1.2e8 parameters (475 MiB of float32, 126 MiB even as q8); the webgpu backend can hold at most 100 MiB',
    );
    // weights that fit only as f16 or q8 pass: the loader picks the format (../weights/format.ts)
    expect(
      configSizeProblem(GPT2_SMALL, { bytes: 256 * 2 ** 20, holder: 'the webgpu backend' }),
    ).toBeUndefined();
  });

  it('a config.json far larger than any config is not read', async () => {
    const file = path.join(dir, 'huge-config.json');
    await fs.writeFile(file, '{}');
    await fs.truncate(file, 2 * GiB);
    try {
      const err = await checkpointError(readHfConfig(file));
      expect(err.message).toMatch(/huge-config\.json: config is 2147483648 bytes, more than/);
    } finally {
      await fs.rm(file, { force: true });
    }
  });
});
