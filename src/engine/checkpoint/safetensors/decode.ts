/** Reading: a safetensors image in memory, or a file one tensor at a time (./reader.ts). */
import { ELEMENT_SIZE, numel, view, type DType, type TypedArray } from './dtypes';
import { bf16ToF32, f16ToF32 } from './f16';
import { headerLength, inspectLayout, parseHeader, type Entry } from './header';
import { withSafetensors } from './reader';
import type { DecodeOptions, SafetensorsFile, Tensor } from './types';

const FLOAT_DTYPES = new Set(['F16', 'BF16', 'F64']);

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

/**
 * Reads a safetensors file header first (see SafetensorsReader: the length and every entry are
 * checked before any tensor is read), then each tensor on its own, with positioned reads into a
 * buffer of exactly its size, so a file with a bad header costs a few bytes of reading and never
 * a whole-file buffer. With toFloat32, F16/BF16/F64 tensors are converted in bounded chunks.
 */
export async function readSafetensors(
  file: string,
  opts: DecodeOptions = {},
): Promise<SafetensorsFile> {
  return withSafetensors(file, opts, async (reader) => {
    const tensors = new Map<string, Tensor>();
    // in file order, so the reads go forwards through the file
    const order = [...reader.entries].sort((a, b) => a.begin - b.begin);
    for (const e of order) {
      const convert = opts.toFloat32 && FLOAT_DTYPES.has(e.dtype);
      tensors.set(
        e.name,
        convert
          ? { dtype: 'F32', shape: e.shape, data: await reader.readFloat32(e.name) }
          : { dtype: e.dtype, shape: e.shape, data: await reader.readRaw(e.name) },
      );
    }
    // header order, as decodeSafetensors gives
    return {
      tensors: new Map(reader.entries.map((e) => [e.name, tensors.get(e.name)!])),
      metadata: reader.metadata,
    };
  });
}
