/**
 * Reading a safetensors file without a file-sized buffer: the header first (its length checked
 * against the file's size and the cap, every entry against the data section), then each tensor
 * on its own with positioned reads, converted to float32 on the fly in bounded chunks. A model
 * larger than memory can be streamed into whatever holds it (f16, q8) a chunk at a time.
 */
import { promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { ELEMENT_SIZE, numel, view, type TypedArray } from './dtypes';
import { bf16ToF32, f16ToF32 } from './f16';
import { headerLength, inspectLayout, parseHeader, type Entry } from './header';
import { CheckpointError, type DecodeOptions } from './types';

/** The most bytes one positioned read asks for, and the size of a conversion chunk. */
export const READ_CHUNK_BYTES = 16 * 2 ** 20;

const FLOATS = new Set(['F32', 'F16', 'BF16', 'F64']);

/** Fills `buf` from `position` in reads of at most `chunk` bytes, or fails: the file shrank. */
async function readFully(
  handle: FileHandle,
  buf: Uint8Array,
  position: number,
  file: string,
  what: string,
  tensor?: string,
  chunk = READ_CHUNK_BYTES,
): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const len = Math.min(buf.length - done, chunk);
    const { bytesRead } = await handle.read(buf, done, len, position + done);
    if (bytesRead === 0) {
      throw new CheckpointError(
        `${what}: the file ended after ${position + done} bytes (it is truncated, or was cut ` +
          'while being read)',
        file,
        tensor,
      );
    }
    done += bytesRead;
  }
}

const cannotRead = (file: string, err: unknown) =>
  err instanceof CheckpointError
    ? err
    : new CheckpointError(`cannot read: ${(err as Error).message}`, file, undefined, {
        cause: err,
      });

/** Float32 values of `count` elements of a float dtype from their raw bytes. */
function toFloat32(dtype: string, bytes: Uint8Array, count: number): Float32Array {
  const raw = view(dtype as Entry['dtype'], bytes.buffer, bytes.byteOffset, count);
  if (dtype === 'F16') return f16ToF32(raw as Uint16Array);
  if (dtype === 'BF16') return bf16ToF32(raw as Uint16Array);
  if (dtype === 'F64') return Float32Array.from(raw as Float64Array);
  return raw as Float32Array;
}

/** An open safetensors file whose header has been read and checked. */
export class SafetensorsReader {
  /** Header order. */
  readonly entries: readonly Entry[];
  private readonly byName: Map<string, Entry>;

  private constructor(
    readonly file: string,
    private readonly handle: FileHandle,
    private readonly dataStart: number,
    readonly metadata: Record<string, string>,
    entries: Entry[],
  ) {
    this.entries = entries;
    this.byName = new Map(entries.map((e) => [e.name, e]));
  }

  /**
   * Opens `file` and reads its header: 8 bytes, then the header itself, and nothing of the data
   * section. `opts.inspect` may refuse the file from its header.
   */
  static async open(
    file: string,
    opts: Pick<DecodeOptions, 'inspect'> = {},
  ): Promise<SafetensorsReader> {
    let handle: FileHandle;
    try {
      handle = await fs.open(file, 'r');
    } catch (err) {
      throw cannotRead(file, err);
    }
    try {
      const { size } = await handle.stat();
      const prefix = new Uint8Array(8);
      if (size >= 8) await readFully(handle, prefix, 0, file, 'header length');
      const headerLen = headerLength(prefix, size, file);
      const headerBytes = new Uint8Array(headerLen);
      await readFully(handle, headerBytes, 8, file, 'header');
      const dataStart = 8 + headerLen;
      const layout = parseHeader(headerBytes, size - dataStart, file);
      inspectLayout(layout, opts);
      return new SafetensorsReader(file, handle, dataStart, layout.metadata, layout.entries);
    } catch (err) {
      await handle.close();
      throw cannotRead(file, err);
    }
  }

  entry(name: string): Entry {
    const e = this.byName.get(name);
    if (!e) throw new CheckpointError(`no tensor '${name}'`, this.file, name);
    return e;
  }

  /** The tensor's bytes, in a fresh buffer of exactly its size (aligned for its dtype). */
  async readRaw(name: string): Promise<TypedArray> {
    const e = this.entry(name);
    const bytes = new Uint8Array(e.end - e.begin);
    await this.fill(e, bytes, e.begin);
    return view(e.dtype, bytes.buffer, 0, numel(e.shape));
  }

  /**
   * Elements [start, start + out.length) of a float tensor (F32, F16, BF16, F64) as float32 into
   * `out`: an F32 tensor is read straight into `out`'s memory, any other through a scratch of at
   * most `chunkBytes`.
   */
  async readFloat32Into(
    name: string,
    out: Float32Array,
    start = 0,
    chunkBytes = READ_CHUNK_BYTES,
  ): Promise<void> {
    const e = this.entry(name);
    if (!FLOATS.has(e.dtype)) {
      throw new CheckpointError(
        `tensor '${name}' has dtype ${e.dtype}, expected floats`,
        this.file,
        name,
      );
    }
    const size = ELEMENT_SIZE[e.dtype];
    if (start < 0 || start + out.length > numel(e.shape)) {
      throw new RangeError(`elements ${start}…${start + out.length} of '${name}' out of range`);
    }
    const from = e.begin + start * size;
    if (e.dtype === 'F32') {
      const bytes = new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
      await this.fill(e, bytes, from, chunkBytes);
      return;
    }
    const per = Math.max(1, Math.floor(chunkBytes / size));
    const scratch = new Uint8Array(Math.min(per, out.length) * size);
    for (let done = 0; done < out.length; done += per) {
      const n = Math.min(per, out.length - done);
      const bytes = scratch.subarray(0, n * size);
      await this.fill(e, bytes, from + done * size, chunkBytes);
      out.set(toFloat32(e.dtype, bytes, n), done);
    }
  }

  /** The whole float tensor as float32, in an array of its own (see readFloat32Into). */
  async readFloat32(name: string, chunkBytes = READ_CHUNK_BYTES): Promise<Float32Array> {
    const out = new Float32Array(numel(this.entry(name).shape));
    await this.readFloat32Into(name, out, 0, chunkBytes);
    return out;
  }

  /**
   * Streams a float tensor as float32 in pieces of `rows` rows (its leading axis) at a time, at
   * most `maxBytes` of float32 each (at least one row): `onRows(values, firstRow)` gets a
   * scratch array that is reused once it returns.
   */
  async forEachRows(
    name: string,
    onRows: (values: Float32Array, firstRow: number) => void | Promise<void>,
    opts: { rowsMultiple?: number; maxBytes?: number } = {},
  ): Promise<void> {
    const shape = this.entry(name).shape;
    const rows = shape[0] ?? 1;
    const rowLen = shape.length === 0 ? 1 : numel(shape.slice(1));
    const multiple = opts.rowsMultiple ?? 1;
    const fit = Math.floor((opts.maxBytes ?? READ_CHUNK_BYTES) / Math.max(1, rowLen * 4));
    const per = Math.max(multiple, fit - (fit % multiple));
    const scratch = new Float32Array(Math.min(per, rows) * rowLen);
    for (let r = 0; r < rows; r += per) {
      const n = Math.min(per, rows - r);
      const chunk = scratch.subarray(0, n * rowLen);
      await this.readFloat32Into(name, chunk, r * rowLen);
      await onRows(chunk, r);
    }
  }

  private async fill(e: Entry, bytes: Uint8Array, from: number, chunk?: number): Promise<void> {
    try {
      await readFully(
        this.handle,
        bytes,
        this.dataStart + from,
        this.file,
        `tensor '${e.name}'`,
        e.name,
        chunk,
      );
    } catch (err) {
      throw cannotRead(this.file, err);
    }
  }

  async close(): Promise<void> {
    await this.handle.close();
  }
}

/** Runs `work` on the open file, closing it after, however `work` ends. */
export async function withSafetensors<R>(
  file: string,
  opts: Pick<DecodeOptions, 'inspect'>,
  work: (reader: SafetensorsReader) => Promise<R>,
): Promise<R> {
  const reader = await SafetensorsReader.open(file, opts);
  try {
    return await work(reader);
  } finally {
    await reader.close();
  }
}
