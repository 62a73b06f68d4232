/** Reading: a safetensors image in memory, or a file one tensor at a time. */
import { promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { ELEMENT_SIZE, numel, view, type DType, type TypedArray } from './dtypes';
import { bf16ToF32, f16ToF32 } from './f16';
import { headerLength, inspectLayout, parseHeader, type Entry } from './header';
import { CheckpointError, type DecodeOptions, type SafetensorsFile, type Tensor } from './types';

function toFloat32(dtype: DType, data: TypedArray): Float32Array | undefined {
  if (dtype === 'F16') return f16ToF32(data as Uint16Array);
  if (dtype === 'BF16') return bf16ToF32(data as Uint16Array);
  if (dtype === 'F64') return Float32Array.from(data as Float64Array);
  return undefined;
}

function asTensor(e: Entry, data: TypedArray, opts: DecodeOptions): Tensor {
  const converted = opts.toFloat32 ? toFloat32(e.dtype, data) : undefined;
  return converted
    ? { dtype: 'F32', shape: e.shape, data: converted }
    : { dtype: e.dtype, shape: e.shape, data };
}

/**
 * Parses and strictly validates a safetensors image. Tensor data are views into `bytes` where
 * alignment allows (copies otherwise), so they share memory with it.
 */
export function decodeSafetensors(
  bytes: Uint8Array,
  file = '<buffer>',
  opts: DecodeOptions = {},
): SafetensorsFile {
  const headerLen = headerLength(bytes, bytes.length, file);
  const dataStart = 8 + headerLen;
  const layout = parseHeader(bytes.subarray(8, dataStart), bytes.length - dataStart, file);
  inspectLayout(layout, opts);
  const { metadata, entries } = layout;
  const tensors = new Map<string, Tensor>();
  for (const e of entries) {
    const size = ELEMENT_SIZE[e.dtype];
    const abs = bytes.byteOffset + dataStart + e.begin;
    let data: TypedArray;
    if (abs % size === 0) {
      data = view(e.dtype, bytes.buffer, abs, numel(e.shape));
    } else {
      const copy = new Uint8Array(e.end - e.begin);
      copy.set(bytes.subarray(dataStart + e.begin, dataStart + e.end));
      data = view(e.dtype, copy.buffer, 0, numel(e.shape));
    }
    tensors.set(e.name, asTensor(e, data, opts));
  }
  return { tensors, metadata };
}

/** Fills `buf` from `position`, or fails: the file shrank since its size was read. */
async function readFully(
  handle: FileHandle,
  buf: Uint8Array,
  position: number,
  file: string,
  what: string,
  tensor?: string,
): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const chunk = Math.min(buf.length - done, 1 << 30);
    const { bytesRead } = await handle.read(buf, done, chunk, position + done);
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

/**
 * Reads a safetensors file header first: the 8-byte length is checked against the file's size
 * (and a 100 MB cap) before the header is read, and every tensor's dtype, shape and data_offsets
 * against the data section before any tensor is. Then each tensor is read on its own, with a
 * positioned read into a buffer of exactly its size, so a file with a bad header costs a few
 * bytes of reading and never a whole-file buffer. (An F16/BF16 tensor read with toFloat32 is
 * converted and its raw bytes dropped before the next one is read.)
 */
export async function readSafetensors(
  file: string,
  opts: DecodeOptions = {},
): Promise<SafetensorsFile> {
  let handle: FileHandle;
  try {
    handle = await fs.open(file, 'r');
  } catch (err) {
    throw new CheckpointError(`cannot read: ${(err as Error).message}`, file, undefined, {
      cause: err,
    });
  }
  try {
    let size: number;
    try {
      ({ size } = await handle.stat());
    } catch (err) {
      throw new CheckpointError(`cannot read: ${(err as Error).message}`, file, undefined, {
        cause: err,
      });
    }
    const prefix = new Uint8Array(8);
    if (size >= 8) await readFully(handle, prefix, 0, file, 'header length');
    const headerLen = headerLength(prefix, size, file);
    const headerBytes = new Uint8Array(headerLen);
    await readFully(handle, headerBytes, 8, file, 'header');
    const dataStart = 8 + headerLen;
    const layout = parseHeader(headerBytes, size - dataStart, file);
    inspectLayout(layout, opts);
    const { metadata, entries } = layout;

    const tensors = new Map<string, Tensor>();
    // in file order, so the reads go forwards through the file
    const order = [...entries].sort((a, b) => a.begin - b.begin);
    for (const e of order) {
      // a fresh ArrayBuffer per tensor: aligned for every dtype, and owned by the tensor alone
      const bytes = new Uint8Array(e.end - e.begin);
      await readFully(handle, bytes, dataStart + e.begin, file, `tensor '${e.name}'`, e.name);
      tensors.set(e.name, asTensor(e, view(e.dtype, bytes.buffer, 0, numel(e.shape)), opts));
    }
    // header order, as decodeSafetensors gives
    return { tensors: new Map(entries.map((e) => [e.name, tensors.get(e.name)!])), metadata };
  } catch (err) {
    if (err instanceof CheckpointError) throw err;
    throw new CheckpointError(`cannot read: ${(err as Error).message}`, file, undefined, {
      cause: err,
    });
  } finally {
    await handle.close();
  }
}
