/**
 * The f16/q8 kernels (./kernels/matmul.c, built to wasm by scripts/build-kernels.sh) and the one
 * memory they work in: a wasm32 memory of its own, up to 4 GiB, that this module hands out with
 * a first-fit allocator (the C code allocates nothing). Views of the memory go stale when it
 * grows: take them again after any alloc.
 */
import { KERNEL_MEMORY_MAX } from './format';
import { MATMUL_WASM_BASE64 } from './kernels/matmulWasm';

type Ptr = number;

/** WebAssembly's API, as far as it is used here (the project's lib has no WebAssembly types). */
interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}
const WA = (
  globalThis as unknown as {
    WebAssembly: {
      Module: new (bytes: Uint8Array) => object;
      Instance: new (module: object, imports: object) => { exports: object };
    };
  }
).WebAssembly;

export interface MatmulExports {
  memory: WasmMemory;
  __heap_base: { value: number };
  q8_pack_rows(
    src: Ptr,
    rows: number,
    k: number,
    kp: number,
    wq: Ptr,
    wd: Ptr,
    n: number,
    first: number,
  ): void;
  q8_pack_cols(src: Ptr, kc: number, n: number, k0: number, kp: number, wq: Ptr, wd: Ptr): void;
  q8_pad(n: number, k: number, kp: number, wq: Ptr, wd: Ptr): void;
  f16_pack_rows(src: Ptr, rows: number, k: number, kp: number, w: Ptr): void;
  f16_pack_cols(src: Ptr, kc: number, n: number, k0: number, kp: number, w: Ptr): void;
  f16_pad(n: number, k: number, kp: number, w: Ptr): void;
  q8_dequant(
    wq: Ptr,
    wd: Ptr,
    n: number,
    k: number,
    kp: number,
    first: number,
    rows: number,
    out: Ptr,
  ): void;
  f16_dequant(w: Ptr, rows: number, k: number, kp: number, out: Ptr): void;
  q8_matmul(
    wq: Ptr,
    wd: Ptr,
    n: number,
    k: number,
    kp: number,
    x: Ptr,
    m: number,
    y: Ptr,
    xs: Ptr,
    xd: Ptr,
  ): void;
  f32_acc_rows(x: Ptr, m: number, xs: number, w: Ptr, kc: number, n: number, y: Ptr): void;
  f32_dot_rows(x: Ptr, m: number, k: number, w: Ptr, rows: number, y: Ptr): void;
  f16_matmul(w: Ptr, n: number, k: number, kp: number, x: Ptr, m: number, y: Ptr, xs: Ptr): void;
}

const PAGE = 65536;
const ALIGN = 64;

const formatGiB = (n: number) => `${(n / 2 ** 30).toFixed(2)} GiB`;

/** The kernels' module and memory, with an allocator over the memory. */
export class KernelHeap {
  readonly fn: MatmulExports;
  /** Free segments, by address. */
  private readonly holes: Array<{ at: Ptr; size: number }> = [];
  private readonly sizes = new Map<Ptr, number>();
  /** The end of what has ever been handed out; everything past it is free. */
  private top: Ptr;
  private used = 0;

  constructor() {
    const bytes = Buffer.from(MATMUL_WASM_BASE64, 'base64');
    const instance = new WA.Instance(new WA.Module(bytes), {});
    this.fn = instance.exports as unknown as MatmulExports;
    this.top = align(this.fn.__heap_base.value);
  }

  get memory(): ArrayBuffer {
    return this.fn.memory.buffer;
  }

  /** Bytes handed out and not released. */
  get bytesInUse(): number {
    return this.used;
  }

  /** `bytes` of memory (64-byte aligned, contents undefined); throws past 4 GiB. */
  alloc(bytes: number): Ptr {
    const size = align(Math.max(1, bytes));
    const i = this.holes.findIndex((h) => h.size >= size);
    let at: Ptr;
    if (i >= 0) {
      const hole = this.holes[i]!;
      at = hole.at;
      if (hole.size === size) this.holes.splice(i, 1);
      else this.holes[i] = { at: at + size, size: hole.size - size };
    } else {
      at = this.top;
      this.ensure(at + size);
      this.top = at + size;
    }
    this.sizes.set(at, size);
    this.used += size;
    return at;
  }

  /** Gives back what alloc returned. */
  release(at: Ptr): void {
    const size = this.sizes.get(at);
    if (size === undefined) return;
    this.sizes.delete(at);
    this.used -= size;
    let i = this.holes.findIndex((h) => h.at > at);
    if (i < 0) i = this.holes.length;
    this.holes.splice(i, 0, { at, size });
    // coalesce with the next, then the previous
    const next = this.holes[i + 1];
    if (next && at + size === next.at) {
      this.holes[i]!.size += next.size;
      this.holes.splice(i + 1, 1);
    }
    const prev = this.holes[i - 1];
    if (prev && prev.at + prev.size === at) {
      prev.size += this.holes[i]!.size;
      this.holes.splice(i, 1);
      i--;
    }
    const last = this.holes.at(-1);
    if (last && last.at + last.size === this.top) {
      this.top = last.at;
      this.holes.pop();
    }
  }

  private ensure(end: number): void {
    const have = this.fn.memory.buffer.byteLength;
    if (end <= have) return;
    if (end > KERNEL_MEMORY_MAX) {
      throw new Error(
        `the weights' wasm memory would need ${formatGiB(end)}, past wasm32's 4 GiB ` +
          `(${formatGiB(this.used)} in use)`,
      );
    }
    // grow by at least a quarter, so that many small allocations do not grow it page by page
    const want = Math.min(KERNEL_MEMORY_MAX, Math.max(end, have + have / 4));
    try {
      this.fn.memory.grow(Math.ceil((want - have) / PAGE));
    } catch (err) {
      throw new Error(
        `the weights' wasm memory cannot grow to ${formatGiB(want)} (${(err as Error).message})`,
        { cause: err },
      );
    }
  }

  f32(at: Ptr, n: number): Float32Array {
    return new Float32Array(this.fn.memory.buffer, at, n);
  }

  u16(at: Ptr, n: number): Uint16Array {
    return new Uint16Array(this.fn.memory.buffer, at, n);
  }

  i8(at: Ptr, n: number): Int8Array {
    return new Int8Array(this.fn.memory.buffer, at, n);
  }
}

function align(n: number): number {
  return Math.ceil(n / ALIGN) * ALIGN;
}

let heap: KernelHeap | undefined;

/** The process's kernel heap, made on first use. */
export function kernelHeap(): KernelHeap {
  heap ??= new KernelHeap();
  return heap;
}
