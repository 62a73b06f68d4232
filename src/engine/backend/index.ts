/**
 * TensorFlow.js backend selection for the engine.
 *
 * tfjs backends are process-global: whichever `initBackend` selects is what every tensor op in
 * this process runs on afterwards. Auto order (best first):
 *
 *   node-gpu (TensorFlow C + CUDA) → webgpu (hardware GPU adapter via Dawn) → node (TensorFlow C
 *   on the CPU) → wasm (XNNPACK, SIMD) → cpu (plain JS)
 *
 * `@tensorflow/tfjs-node` / `-node-gpu` are optional dependencies and are often absent; `webgpu`
 * (Dawn's Node binding) needs a Vulkan/Metal/D3D12 adapter. See docs/backends.md.
 *
 * Engine code must read tensors with `await t.data()` / `await t.array()`: the webgpu backend
 * cannot read synchronously in Node (`dataSync()` throws there).
 */
export * from './types';
export { getBackendReport, initBackend } from './select';
export { backendMemoryBudget, checkTensorSize } from './memory';
export { WASM_DIR_ENV } from './wasm';
