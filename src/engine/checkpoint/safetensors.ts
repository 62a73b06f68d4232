/**
 * The safetensors format: an 8-byte little-endian u64 header length N, N bytes of UTF-8 JSON
 * ({name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {string: string}}), then
 * the tensor bytes, contiguous, row-major, little-endian. Offsets are relative to the byte buffer.
 */
import { promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { writeFileAtomic } from '../util/atomic';

export type DType =
  | 'F64'
  | 'F32'
  | 'F16'
  | 'BF16'
  | 'I64'
  | 'I32'
  | 'I16'
  | 'I8'
  | 'U64'
  | 'U32'
  | 'U16'
  | 'U8'
  | 'BOOL';

/** F16 and BF16 are held as their raw 16-bit patterns; BOOL as 0/1 bytes. */
export type TypedArray =
  | Float64Array
  | Float32Array
  | BigInt64Array
  | BigUint64Array
  | Int32Array
  | Uint32Array
  | Int16Array
  | Uint16Array
  | Int8Array
  | Uint8Array;

export interface Tensor {
  dtype: DType;
  shape: number[];
  data: TypedArray;
}

export interface SafetensorsFile {
  tensors: Map<string, Tensor>;
  metadata: Record<string, string>;
}

/** A tensor as its header entry describes it, before its data are read. */
export interface TensorInfo {
  dtype: DType;
  shape: number[];
}

export interface DecodeOptions {
  /** Convert F16, BF16 and F64 tensors to F32 (their dtype then reads 'F32'). */
  toFloat32?: boolean;
  /**
   * Called once the header has been validated, before any tensor's data are read, with every
   * tensor's dtype and shape (in header order) and the metadata: throw to refuse the file
   * without reading (or allocating) its tensors.
   */
  inspect?: (tensors: ReadonlyMap<string, TensorInfo>, metadata: Record<string, string>) => void;
}

/** A malformed or mismatched checkpoint. The message starts with the file's path. */
export class CheckpointError extends Error {
  override name = 'CheckpointError';
  readonly file: string;
  readonly tensor: string | undefined;

  constructor(detail: string, file: string, tensor?: string, options?: ErrorOptions) {
    super(`${file}: ${detail}`, options);
    this.file = file;
    this.tensor = tensor;
  }
}

const ELEMENT_SIZE: Record<DType, number> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U64: 8,
  U32: 4,
  U16: 2,
  U8: 1,
  BOOL: 1,
};

// The Rust library lays tensors out by dtype, in descending order of its Dtype enum, then by name.
const DTYPE_RANK: DType[] = [
  'BOOL',
  'U8',
  'I8',
  'I16',
  'U16',
  'F16',
  'BF16',
  'I32',
  'U32',
  'F32',
  'F64',
  'I64',
  'U64',
];

const METADATA_KEY = '__metadata__';
const MAX_HEADER_SIZE = 100_000_000; // as in the Rust library

export function isDType(s: string): s is DType {
  return Object.hasOwn(ELEMENT_SIZE, s);
}

export function dtypeSize(dtype: DType): number {
  return ELEMENT_SIZE[dtype];
}

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
  throw new Error('safetensors: big-endian hosts are not supported');
}

// ---------------------------------------------------------------------------------------------
// Half and bfloat16 conversion

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

// ---------------------------------------------------------------------------------------------
// Encoding

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

/**
 * Returns a typed array whose bytes are the tensor's on-disk encoding. For F16 and BF16 a
 * Uint16Array is taken as raw bit patterns; any other array as values to convert.
 */
function encodeData(dtype: DType, data: TypedArray): TypedArray {
  switch (dtype) {
    case 'F64':
      return data instanceof Float64Array ? data : Float64Array.from(asNumbers(data));
    case 'F32':
      return data instanceof Float32Array ? data : Float32Array.from(asNumbers(data));
    case 'F16':
      return data instanceof Uint16Array ? data : f32ToF16(toFloat32Values(data));
    case 'BF16':
      return data instanceof Uint16Array ? data : f32ToBf16(toFloat32Values(data));
    case 'I64':
      return data instanceof BigInt64Array ? data : BigInt64Array.from(asBigInts(data));
    case 'U64':
      return data instanceof BigUint64Array ? data : BigUint64Array.from(asBigInts(data));
    case 'I32':
      return data instanceof Int32Array ? data : Int32Array.from(asNumbers(data));
    case 'U32':
      return data instanceof Uint32Array ? data : Uint32Array.from(asNumbers(data));
    case 'I16':
      return data instanceof Int16Array ? data : Int16Array.from(asNumbers(data));
    case 'U16':
      return data instanceof Uint16Array ? data : Uint16Array.from(asNumbers(data));
    case 'I8':
      return data instanceof Int8Array ? data : Int8Array.from(asNumbers(data));
    case 'U8':
    case 'BOOL':
      return data instanceof Uint8Array ? data : Uint8Array.from(asNumbers(data));
  }
}

function toFloat32Values(data: TypedArray): Float32Array {
  return data instanceof Float32Array ? data : Float32Array.from(asNumbers(data));
}

function byteOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/**
 * Serialises tensors the way the Python library does: tensors ordered by dtype then name, a
 * compact JSON header with __metadata__ first, padded with spaces to a multiple of 8 bytes.
 */
export function encodeSafetensors(
  tensors: Record<string, Tensor> | ReadonlyMap<string, Tensor>,
  metadata?: Record<string, string>,
  file = '<buffer>',
): Uint8Array {
  const entries = tensors instanceof Map ? [...tensors] : Object.entries(tensors);
  const prepared = entries.map(([name, t]) => {
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
    return { name, dtype: t.dtype, shape: t.shape, bytes: encodeData(t.dtype, t.data) };
  });
  prepared.sort(
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
  for (const t of prepared) {
    header[t.name] = {
      dtype: t.dtype,
      shape: t.shape,
      data_offsets: [offset, offset + t.bytes.byteLength],
    };
    offset += t.bytes.byteLength;
  }

  const json = new TextEncoder().encode(JSON.stringify(header));
  const headerLen = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + headerLen + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerLen), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + headerLen);
  let pos = 8 + headerLen;
  for (const t of prepared) {
    out.set(new Uint8Array(t.bytes.buffer, t.bytes.byteOffset, t.bytes.byteLength), pos);
    pos += t.bytes.byteLength;
  }
  return out;
}

export async function writeSafetensors(
  file: string,
  tensors: Record<string, Tensor> | ReadonlyMap<string, Tensor>,
  metadata?: Record<string, string>,
): Promise<void> {
  await writeFileAtomic(file, encodeSafetensors(tensors, metadata, file));
}

// ---------------------------------------------------------------------------------------------
// Decoding

function checkShape(shape: unknown, file: string, name: string): asserts shape is number[] {
  if (
    !Array.isArray(shape) ||
    !shape.every((d) => typeof d === 'number' && Number.isSafeInteger(d) && d >= 0) ||
    !Number.isSafeInteger(numel(shape))
  ) {
    throw new CheckpointError(
      `tensor '${name}' has invalid shape ${JSON.stringify(shape)}: dimensions must be non-negative integers`,
      file,
      name,
    );
  }
}

function view(dtype: DType, buffer: ArrayBufferLike, byteOffset: number, n: number): TypedArray {
  switch (dtype) {
    case 'F64':
      return new Float64Array(buffer, byteOffset, n);
    case 'F32':
      return new Float32Array(buffer, byteOffset, n);
    case 'I64':
      return new BigInt64Array(buffer, byteOffset, n);
    case 'U64':
      return new BigUint64Array(buffer, byteOffset, n);
    case 'I32':
      return new Int32Array(buffer, byteOffset, n);
    case 'U32':
      return new Uint32Array(buffer, byteOffset, n);
    case 'I16':
      return new Int16Array(buffer, byteOffset, n);
    case 'F16':
    case 'BF16':
    case 'U16':
      return new Uint16Array(buffer, byteOffset, n);
    case 'I8':
      return new Int8Array(buffer, byteOffset, n);
    case 'U8':
    case 'BOOL':
      return new Uint8Array(buffer, byteOffset, n);
  }
}

interface Entry {
  name: string;
  dtype: DType;
  shape: number[];
  begin: number;
  end: number;
}

function parseEntry(name: string, info: unknown, file: string): Entry {
  if (typeof info !== 'object' || info === null || Array.isArray(info)) {
    throw new CheckpointError(`tensor '${name}': header entry is not an object`, file, name);
  }
  const { dtype, shape, data_offsets: offsets } = info as Record<string, unknown>;
  if (typeof dtype !== 'string' || !isDType(dtype)) {
    throw new CheckpointError(
      `tensor '${name}' has unsupported dtype ${JSON.stringify(dtype)} (supported: ${Object.keys(ELEMENT_SIZE).join(', ')})`,
      file,
      name,
    );
  }
  checkShape(shape, file, name);
  if (
    !Array.isArray(offsets) ||
    offsets.length !== 2 ||
    !offsets.every((o) => typeof o === 'number' && Number.isSafeInteger(o) && o >= 0) ||
    offsets[0] > offsets[1]
  ) {
    throw new CheckpointError(
      `tensor '${name}' has invalid data_offsets ${JSON.stringify(offsets)}: expected [begin, end] with 0 <= begin <= end`,
      file,
      name,
    );
  }
  const [begin, end] = offsets as [number, number];
  const need = numel(shape) * ELEMENT_SIZE[dtype];
  if (end - begin !== need) {
    throw new CheckpointError(
      `tensor '${name}': data_offsets [${begin}, ${end}] span ${end - begin} bytes, but shape [${shape.join(', ')}] of ${dtype} needs ${need}`,
      file,
      name,
    );
  }
  return { name, dtype, shape, begin, end };
}

function parseMetadata(value: unknown, file: string): Record<string, string> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new CheckpointError(`${METADATA_KEY} must be an object of strings`, file);
  }
  for (const [k, v] of Object.entries(value)) {
    if (typeof v !== 'string') {
      throw new CheckpointError(`${METADATA_KEY} field '${k}' must be a string`, file);
    }
  }
  return { ...(value as Record<string, string>) };
}

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
 * The header length from the first 8 bytes, checked against the file's size and the cap before
 * anything of that length is allocated or read.
 */
function headerLength(prefix: Uint8Array, fileSize: number, file: string): number {
  const fail = (detail: string) => new CheckpointError(detail, file);
  if (fileSize < 8) {
    throw fail(`file is ${fileSize} bytes, too short to be a safetensors file`);
  }
  const n = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(fileSize - 8)) {
    const where =
      n > BigInt(fileSize)
        ? `is larger than the file (${fileSize} bytes)`
        : `does not fit in the file (${fileSize} bytes, 8 of them the length itself)`;
    throw fail(
      `header length ${n} ${where} and runs past its end: ` +
        'the file is truncated or not a safetensors file',
    );
  }
  const headerLen = Number(n);
  if (headerLen > MAX_HEADER_SIZE) {
    throw fail(`header length ${headerLen} exceeds the ${MAX_HEADER_SIZE}-byte limit`);
  }
  return headerLen;
}

interface Layout {
  metadata: Record<string, string>;
  /** In header order. */
  entries: Entry[];
}

function inspectLayout(layout: Layout, opts: DecodeOptions): void {
  opts.inspect?.(
    new Map(layout.entries.map((e) => [e.name, { dtype: e.dtype, shape: e.shape }])),
    layout.metadata,
  );
}

/**
 * Parses the JSON header and checks every tensor against the data section (`dataLen` bytes):
 * dtype, shape (non-negative safe integers), data_offsets (within the data section, byte count =
 * ∏shape × dtype size, no overlaps, no gaps, nothing left over). Nothing is allocated from it.
 */
function parseHeader(headerBytes: Uint8Array, dataLen: number, file: string): Layout {
  const fail = (detail: string, tensor?: string) => new CheckpointError(detail, file, tensor);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(headerBytes));
  } catch (err) {
    throw fail(`header is not valid UTF-8 JSON (${(err as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) {
    throw fail(`header is not a JSON object`);
  }

  let metadata: Record<string, string> = {};
  const entries: Entry[] = [];
  for (const [name, info] of Object.entries(header as object)) {
    if (name === METADATA_KEY) metadata = parseMetadata(info, file);
    else entries.push(parseEntry(name, info, file));
  }

  for (const e of entries) {
    if (e.end > dataLen) {
      throw fail(
        `tensor '${e.name}' needs bytes up to ${e.end} of the data section, but only ${dataLen} are ` +
          `present (its data_offsets [${e.begin}, ${e.end}] run past the data section of ` +
          `${dataLen} bytes): the file is truncated`,
        e.name,
      );
    }
  }
  const sorted = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let expected = 0;
  let prev: Entry | undefined;
  for (const e of sorted) {
    if (e.begin < expected) {
      throw fail(
        `tensor '${e.name}' (data_offsets [${e.begin}, ${e.end}]) overlaps tensor '${prev?.name}' (ends at ${expected})`,
        e.name,
      );
    }
    if (e.begin > expected) {
      throw fail(
        `tensor '${e.name}' starts at ${e.begin}, leaving a gap of ${e.begin - expected} unused bytes before it`,
        e.name,
      );
    }
    expected = e.end;
    prev = e;
  }
  if (expected !== dataLen) {
    throw fail(`${dataLen - expected} unexpected bytes after the last tensor's data`);
  }
  return { metadata, entries };
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
