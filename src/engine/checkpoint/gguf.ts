/**
 * GGUF, llama.cpp's single-file model format (version 3), for the `gpt2` architecture.
 *
 * Layout, all little-endian: magic "GGUF", u32 version, u64 tensor count, u64 key-value count;
 * the key-values (string key, u32 value type, value); the tensor infos (string name, u32 n_dims,
 * u64 dims[n_dims], u32 ggml type, u64 offset into the data section); zero padding to the
 * alignment (general.alignment, default 32); the tensor data, each tensor starting on a multiple of
 * the alignment. A string is a u64 byte length and UTF-8 bytes, no terminator. ggml lists a
 * tensor's dimensions fastest-varying first, so a row-major [rows, cols] tensor has dims
 * [cols, rows].
 */
import { promises as fs } from 'node:fs';
import { writeFileAtomic } from '../util/atomic';
import { CheckpointError, f16ToF32, f32ToF16 } from './safetensors';

export const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
export const GGUF_VERSION = 3;
export const GGUF_DEFAULT_ALIGNMENT = 32;

/** Metadata value types. */
export const GgufType = {
  UINT8: 0,
  INT8: 1,
  UINT16: 2,
  INT16: 3,
  UINT32: 4,
  INT32: 5,
  FLOAT32: 6,
  BOOL: 7,
  STRING: 8,
  ARRAY: 9,
  UINT64: 10,
  INT64: 11,
  FLOAT64: 12,
} as const;
type T = typeof GgufType;

/** The two ggml tensor types written here. */
export const GGML_F32 = 0;
export const GGML_F16 = 1;

/** llama.cpp's token types (tokenizer.ggml.token_type). */
export const TOKEN_TYPE = { normal: 1, unknown: 2, control: 3, userDefined: 4, unused: 5, byte: 6 };

export type GgufValue =
  | { type: T['UINT32'] | T['INT32'] | T['FLOAT32'] | T['UINT8']; value: number }
  | { type: T['UINT64'] | T['INT64']; value: bigint }
  | { type: T['BOOL']; value: boolean }
  | { type: T['STRING']; value: string }
  | { type: T['ARRAY']; itemType: T['STRING']; value: string[] }
  | { type: T['ARRAY']; itemType: T['INT32'] | T['UINT32'] | T['FLOAT32']; value: number[] };

export interface GgufTensor {
  name: string;
  /** Row-major shape (PyTorch order); written reversed as ggml dims. */
  shape: number[];
  type: typeof GGML_F32 | typeof GGML_F16;
  data: Float32Array;
}

export const u32 = (value: number): GgufValue => ({ type: GgufType.UINT32, value });
export const f32 = (value: number): GgufValue => ({ type: GgufType.FLOAT32, value });
export const str = (value: string): GgufValue => ({ type: GgufType.STRING, value });
export const strings = (value: string[]): GgufValue => ({
  type: GgufType.ARRAY,
  itemType: GgufType.STRING,
  value,
});
export const int32s = (value: number[]): GgufValue => ({
  type: GgufType.ARRAY,
  itemType: GgufType.INT32,
  value,
});

// ---------------------------------------------------------------------------------------------
// Writing

class ByteWriter {
  private buf: Uint8Array;
  private view: DataView;
  pos = 0;
  constructor(size = 1 << 16) {
    this.buf = new Uint8Array(size);
    this.view = new DataView(this.buf.buffer);
  }
  private room(n: number) {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }
  /** Makes room for n bytes, lets `write` fill them at the current position, and steps past. */
  private put(n: number, write: (view: DataView, at: number) => void) {
    this.room(n);
    write(this.view, this.pos);
    this.pos += n;
  }
  u8(x: number) {
    this.put(1, (v, at) => v.setUint8(at, x));
  }
  u32(x: number) {
    this.put(4, (v, at) => v.setUint32(at, x, true));
  }
  i32(x: number) {
    this.put(4, (v, at) => v.setInt32(at, x, true));
  }
  f32(x: number) {
    this.put(4, (v, at) => v.setFloat32(at, x, true));
  }
  u64(x: number | bigint) {
    this.put(8, (v, at) => v.setBigUint64(at, BigInt(x), true));
  }
  i64(x: bigint) {
    this.put(8, (v, at) => v.setBigInt64(at, x, true));
  }
  bytes(b: Uint8Array) {
    this.room(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }
  string(s: string) {
    const b = Buffer.from(s, 'utf8');
    this.u64(b.length);
    this.bytes(b);
  }
  pad(alignment: number) {
    const n = (alignment - (this.pos % alignment)) % alignment;
    this.room(n);
    this.buf.fill(0, this.pos, this.pos + n);
    this.pos += n;
  }
  result(): Uint8Array {
    return this.buf.subarray(0, this.pos);
  }
}

/** The writer of each number type a value, or an array's items, can have. */
const NUMBER_WRITERS: Record<
  T['UINT8'] | T['UINT32'] | T['INT32'] | T['FLOAT32'],
  (w: ByteWriter, x: number) => void
> = {
  [GgufType.UINT8]: (w, x) => w.u8(x),
  [GgufType.UINT32]: (w, x) => w.u32(x),
  [GgufType.INT32]: (w, x) => w.i32(x),
  [GgufType.FLOAT32]: (w, x) => w.f32(x),
};

function writeValue(w: ByteWriter, v: GgufValue) {
  if (v.type === GgufType.ARRAY) {
    w.u32(v.itemType);
    w.u64(v.value.length);
    for (const item of v.value) {
      if (v.itemType === GgufType.STRING) w.string(item as string);
      else NUMBER_WRITERS[v.itemType](w, item as number);
    }
  } else if (v.type === GgufType.UINT64) w.u64(v.value);
  else if (v.type === GgufType.INT64) w.i64(v.value);
  else if (v.type === GgufType.BOOL) w.u8(v.value ? 1 : 0);
  else if (v.type === GgufType.STRING) w.string(v.value);
  // the one type left: a number (the compiler does not narrow the 64-bit member away)
  else NUMBER_WRITERS[v.type](w, v.value as number);
}

const tensorBytes = (t: GgufTensor) => t.data.length * (t.type === GGML_F16 ? 2 : 4);

/** Serialises a GGUF file. Metadata keys are written in the order given. */
export function encodeGguf(
  metadata: ReadonlyArray<[string, GgufValue]>,
  tensors: readonly GgufTensor[],
  alignment = GGUF_DEFAULT_ALIGNMENT,
): Uint8Array {
  const head = new ByteWriter();
  head.u32(GGUF_MAGIC);
  head.u32(GGUF_VERSION);
  head.u64(tensors.length);
  head.u64(metadata.length);
  for (const [key, value] of metadata) {
    head.string(key);
    head.u32(value.type);
    writeValue(head, value);
  }
  let offset = 0;
  const offsets: number[] = [];
  for (const t of tensors) {
    if (Buffer.byteLength(t.name) > 64) throw new Error(`GGUF tensor name too long: ${t.name}`);
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (n !== t.data.length) {
      throw new Error(`GGUF tensor ${t.name}: ${t.data.length} values for shape [${t.shape}]`);
    }
    head.string(t.name);
    head.u32(t.shape.length);
    for (const d of [...t.shape].reverse()) head.u64(d);
    head.u32(t.type);
    head.u64(offset);
    offsets.push(offset);
    offset += tensorBytes(t);
    offset += (alignment - (offset % alignment)) % alignment;
  }
  head.pad(alignment);
  const header = head.result();
  const out = new Uint8Array(header.length + offset);
  out.set(header);
  tensors.forEach((t, i) => {
    const data = t.type === GGML_F16 ? f32ToF16(t.data) : t.data;
    out.set(
      new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
      header.length + offsets[i]!,
    );
  });
  return out;
}

export async function writeGguf(
  file: string,
  metadata: ReadonlyArray<[string, GgufValue]>,
  tensors: readonly GgufTensor[],
): Promise<void> {
  await writeFileAtomic(file, encodeGguf(metadata, tensors));
}

// ---------------------------------------------------------------------------------------------
// Reading (for verification: an independent parse of what was written)

export interface GgufFile {
  version: number;
  metadata: Map<string, unknown>;
  tensors: Map<string, { dims: number[]; type: number; offset: number; data: Float32Array }>;
  alignment: number;
  dataStart: number;
}

/** Parses a GGUF v2/v3 file with F32/F16 tensors; values come back as plain JS values. */
export function decodeGguf(bytes: Uint8Array, file = '<buffer>'): GgufFile {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let pos = 0;
  const fail = (detail: string) => new CheckpointError(detail, file);
  const need = (n: number) => {
    if (pos + n > bytes.length) throw fail(`truncated at byte ${pos} (needs ${n} more)`);
  };
  const u32 = () => (need(4), (pos += 4), view.getUint32(pos - 4, true));
  const u64 = () => {
    need(8);
    pos += 8;
    const v = view.getBigUint64(pos - 8, true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw fail(`u64 ${v} at byte ${pos - 8} too large`);
    return Number(v);
  };
  const string = () => {
    const n = u64();
    need(n);
    pos += n;
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(pos - n, pos));
  };
  const value = (type: number): unknown => {
    switch (type) {
      case GgufType.UINT8:
        return (need(1), view.getUint8(pos++));
      case GgufType.INT8:
        return (need(1), view.getInt8(pos++));
      case GgufType.UINT16:
        return (need(2), (pos += 2), view.getUint16(pos - 2, true));
      case GgufType.INT16:
        return (need(2), (pos += 2), view.getInt16(pos - 2, true));
      case GgufType.UINT32:
        return u32();
      case GgufType.INT32:
        return (need(4), (pos += 4), view.getInt32(pos - 4, true));
      case GgufType.FLOAT32:
        return (need(4), (pos += 4), view.getFloat32(pos - 4, true));
      case GgufType.BOOL: {
        need(1);
        const b = view.getUint8(pos++);
        if (b > 1) throw fail(`bool value ${b} at byte ${pos - 1}`);
        return b === 1;
      }
      case GgufType.STRING:
        return string();
      case GgufType.ARRAY: {
        const itemType = u32();
        const n = u64();
        const out: unknown[] = [];
        for (let i = 0; i < n; i++) out.push(value(itemType));
        return out;
      }
      case GgufType.UINT64:
        return (need(8), (pos += 8), view.getBigUint64(pos - 8, true));
      case GgufType.INT64:
        return (need(8), (pos += 8), view.getBigInt64(pos - 8, true));
      case GgufType.FLOAT64:
        return (need(8), (pos += 8), view.getFloat64(pos - 8, true));
      default:
        throw fail(`unknown metadata value type ${type} at byte ${pos - 4}`);
    }
  };

  if (u32() !== GGUF_MAGIC) throw fail('not a GGUF file (bad magic)');
  const version = u32();
  if (version !== 2 && version !== 3) throw fail(`GGUF version ${version} is not supported`);
  const nTensors = u64();
  const nKv = u64();
  const metadata = new Map<string, unknown>();
  for (let i = 0; i < nKv; i++) {
    const key = string();
    metadata.set(key, value(u32()));
  }
  const infos: Array<{ name: string; dims: number[]; type: number; offset: number }> = [];
  for (let i = 0; i < nTensors; i++) {
    const name = string();
    const nd = u32();
    const dims: number[] = [];
    for (let d = 0; d < nd; d++) dims.push(u64());
    infos.push({ name, dims, type: u32(), offset: u64() });
  }
  const alignment = (metadata.get('general.alignment') as number | undefined) ?? 32;
  const dataStart = Math.ceil(pos / alignment) * alignment;
  const tensors: GgufFile['tensors'] = new Map();
  for (const t of infos) {
    if (t.offset % alignment !== 0) {
      throw fail(`tensor '${t.name}' offset ${t.offset} is not a multiple of ${alignment}`);
    }
    const n = t.dims.reduce((a, b) => a * b, 1);
    const size = t.type === GGML_F32 ? 4 : t.type === GGML_F16 ? 2 : 0;
    if (size === 0) throw fail(`tensor '${t.name}' has ggml type ${t.type} (only F32/F16 read)`);
    const begin = dataStart + t.offset;
    if (begin + n * size > bytes.length) throw fail(`tensor '${t.name}' runs past the end`);
    const raw = new Uint8Array(n * size); // a copy: aligned, and its own buffer
    raw.set(bytes.subarray(begin, begin + n * size));
    const data =
      size === 4 ? new Float32Array(raw.buffer, 0, n) : f16ToF32(new Uint16Array(raw.buffer, 0, n));
    tensors.set(t.name, { ...t, data });
  }
  return { version, metadata, tensors, alignment, dataStart };
}

export async function readGguf(file: string): Promise<GgufFile> {
  return decodeGguf(await fs.readFile(file), file);
}
