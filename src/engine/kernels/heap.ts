/**
 * Our wasm modules inside tfjs-wasm's memory: each imports the backend's WebAssembly.Memory, so
 * it reads tensors where tfjs keeps them and writes into outputs tfjs allocated, with no copies.
 * The modules have no data or stack of their own (scripts/build-kernels.sh links them so).
 */
import * as tf from '@tensorflow/tfjs-core';

/** WebAssembly's API, as far as it is used here (the project's lib has no WebAssembly types). */
const WA = (
  globalThis as unknown as {
    WebAssembly: {
      validate(bytes: Uint8Array): boolean;
      Module: new (bytes: Uint8Array) => object;
      Instance: new (module: object, imports: object) => { exports: object };
    };
  }
).WebAssembly;

/** tfjs-wasm's BackendWasm, as far as it is used here. */
export interface HeapBackend {
  dataIdMap: { get(id: object): { memoryOffset: number } };
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  incRef(id: object): void;
  /** tfjs-wasm's emscripten module: its memory (a WebAssembly.Memory) and its allocator. */
  wasm: { asm: { memory: object }; _malloc(bytes: number): number; HEAPU8: Uint8Array };
}

export const fromBase64 = (b64: string): Uint8Array =>
  Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));

export const validWasm = (bytes: Uint8Array): boolean => WA.validate(bytes);

export const compileWasm = (bytes: Uint8Array): object => new WA.Module(bytes);

/** A compiled module's exports, instantiated with `imports`. */
export const instantiateWasm = <E>(module: object, imports: object = {}): E =>
  new WA.Instance(module, imports).exports as E;

const instances = new WeakMap<object, WeakMap<object, object>>();

/** `module`'s exports, instantiated once per backend on that backend's memory. */
export function exportsOn<E>(backend: HeapBackend, module: object): E {
  let byModule = instances.get(backend);
  if (!byModule) instances.set(backend, (byModule = new WeakMap()));
  let exports = byModule.get(module);
  if (!exports) {
    exports = instantiateWasm<object>(module, { env: { memory: backend.wasm.asm.memory } });
    byModule.set(module, exports);
  }
  return exports as E;
}

/** Where a tensor's data starts in the heap. */
export const offsetOf = (backend: HeapBackend, t: tf.TensorInfo): number =>
  backend.dataIdMap.get(t.dataId).memoryOffset;

/** A float32 tensor's data, as a view of the heap (valid until the heap next grows). */
export const heapFloats = (backend: HeapBackend, t: tf.TensorInfo): Float32Array =>
  new Float32Array(
    backend.wasm.HEAPU8.buffer,
    offsetOf(backend, t),
    t.shape.reduce((a, b) => a * b, 1),
  );

/** The wasm backend in use, or null on another backend. */
export function activeHeapBackend(): HeapBackend | null {
  return tf.getBackend() === 'wasm' ? (tf.backend() as unknown as HeapBackend) : null;
}

/** A tensor made from an output the backend allocated (makeOutput), tracked by the engine. */
export function tensorOf<T extends tf.Tensor>(info: tf.TensorInfo): T {
  const engine = tf.engine() as unknown as { makeTensorFromTensorInfo(t: tf.TensorInfo): T };
  return engine.makeTensorFromTensorInfo(info);
}
