/** Writing: tensors to a safetensors image laid out as the Python library lays it out. */
import { DTYPE_RANK, isDType, numel, type DType, type TypedArray } from './dtypes';
import { f32ToBf16, f32ToF16 } from './f16';
import { checkShape } from './header';
import { CheckpointError, METADATA_KEY, type Tensor } from './types';

function asNumbers(data: TypedArray): ArrayLike<number> {
  return data instanceof BigInt64Array || data instanceof BigUint64Array
    ? Array.from(data, Number)
    : data;
}

function asBigInts(data: TypedArray): bigint[] {
  return data instanceof BigInt64Array || data instanceof BigUint64Array
    ? Array.from(data)
    : Array.from(data, (x) => BigInt(x));
}

/** A typed-array class that holds plain numbers. */
interface NumberArrayClass {
  new (length: number): TypedArray;
  from(values: ArrayLike<number>): TypedArray;
}

/** The array class of each dtype stored as plain numbers. */
const NUMBER_ARRAYS: Record<Exclude<DType, 'F16' | 'BF16' | 'I64' | 'U64'>, NumberArrayClass> = {
  F64: Float64Array,
  F32: Float32Array,
  I32: Int32Array,
  U32: Uint32Array,
  I16: Int16Array,
  U16: Uint16Array,
  I8: Int8Array,
  U8: Uint8Array,
  BOOL: Uint8Array,
};

/**
 * Returns a typed array whose bytes are the tensor's on-disk encoding. For F16 and BF16 a
 * Uint16Array is taken as raw bit patterns; any other array as values to convert.
 */
function encodeData(dtype: DType, data: TypedArray): TypedArray {
  switch (dtype) {
    case 'F16':
      return data instanceof Uint16Array ? data : f32ToF16(toFloat32Values(data));
    case 'BF16':
      return data instanceof Uint16Array ? data : f32ToBf16(toFloat32Values(data));
    case 'I64':
      return data instanceof BigInt64Array ? data : BigInt64Array.from(asBigInts(data));
    case 'U64':
      return data instanceof BigUint64Array ? data : BigUint64Array.from(asBigInts(data));
    default: {
      const ArrayClass = NUMBER_ARRAYS[dtype];
      return data instanceof ArrayClass ? data : ArrayClass.from(asNumbers(data));
    }
  }
}

function toFloat32Values(data: TypedArray): Float32Array {
  return data instanceof Float32Array ? data : Float32Array.from(asNumbers(data));
}

function byteOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/** A tensor as the header lists it: its data's place in the data section. */
export interface PlannedTensor {
  name: string;
  dtype: DType;
  shape: number[];
  begin: number;
  end: number;
}

/**
 * The file's layout as the Python library makes it: tensors ordered by dtype then name, a compact
 * JSON header with __metadata__ first, padded with spaces to a multiple of 8 bytes. Returns the
 * header with its 8-byte length prefix, and the tensors in file order.
 */
export function planLayout(
  tensors: ReadonlyArray<{ name: string; dtype: DType; shape: number[]; byteLength: number }>,
  metadata: Record<string, string> | undefined,
  file: string,
): { header: Uint8Array; order: PlannedTensor[] } {
  const sorted = [...tensors].sort(
    (a, b) =>
      DTYPE_RANK.indexOf(b.dtype) - DTYPE_RANK.indexOf(a.dtype) || byteOrder(a.name, b.name),
  );
  const header: Record<string, unknown> = Object.create(null); // a tensor may be named __proto__
  if (metadata !== undefined) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') {
        throw new CheckpointError(`metadata '${k}' must be a string, got ${typeof v}`, file);
      }
    }
    header[METADATA_KEY] = Object.fromEntries(
      Object.entries(metadata).sort(([a], [b]) => byteOrder(a, b)),
    );
  }
  let offset = 0;
  const order: PlannedTensor[] = [];
  for (const t of sorted) {
    const end = offset + t.byteLength;
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, end] };
    order.push({ name: t.name, dtype: t.dtype, shape: t.shape, begin: offset, end });
    offset = end;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const headerLen = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + headerLen);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerLen), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length);
  return { header: out, order };
}

/** The tensors, each checked (name, dtype, shape against its data), with their encoded bytes. */
export function prepareTensors(
  tensors: Record<string, Tensor> | ReadonlyMap<string, Tensor>,
  file: string,
  encode = true,
): Array<{ name: string; dtype: DType; shape: number[]; tensor: Tensor; bytes?: TypedArray }> {
  const entries = tensors instanceof Map ? [...tensors] : Object.entries(tensors);
  return entries.map(([name, t]) => {
    if (name === METADATA_KEY) throw new CheckpointError(`'${name}' is reserved`, file, name);
    if (!isDType(t.dtype)) {
      throw new CheckpointError(`tensor '${name}' has unknown dtype '${t.dtype}'`, file, name);
    }
    checkShape(t.shape, file, name);
    if (t.data.length !== numel(t.shape)) {
      throw new CheckpointError(
        `tensor '${name}' has ${t.data.length} elements but shape [${t.shape.join(', ')}] needs ${numel(t.shape)}`,
        file,
        name,
      );
    }
    const dtype = t.dtype;
    return {
      name,
      dtype,
      shape: t.shape,
      tensor: t,
      ...(encode ? { bytes: encodeData(dtype, t.data) } : {}),
    };
  });
}

/** One tensor's bytes as they go on disk (F16/BF16 converted, other arrays as their dtype). */
export function tensorBytes(t: Tensor): TypedArray {
  return encodeData(t.dtype as DType, t.data);
}

/**
 * Serialises tensors the way the Python library does (see planLayout), into one buffer: for
 * files that fit in memory (writeSafetensors streams instead).
 */
export function encodeSafetensors(
  tensors: Record<string, Tensor> | ReadonlyMap<string, Tensor>,
  metadata?: Record<string, string>,
  file = '<buffer>',
): Uint8Array {
  const prepared = prepareTensors(tensors, file);
  const { header, order } = planLayout(
    prepared.map((t) => ({ ...t, byteLength: t.bytes!.byteLength })),
    metadata,
    file,
  );
  const out = new Uint8Array(header.length + (order.at(-1)?.end ?? 0));
  out.set(header);
  const byName = new Map(prepared.map((t) => [t.name, t]));
  for (const { name, begin } of order) {
    const t = byName.get(name)!.bytes!;
    out.set(new Uint8Array(t.buffer, t.byteOffset, t.byteLength), header.length + begin);
  }
  return out;
}
