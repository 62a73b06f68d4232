/**
 * The safetensors format: an 8-byte little-endian u64 header length N, N bytes of UTF-8 JSON
 * ({name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {string: string}}), then
 * the tensor bytes, contiguous, row-major, little-endian. Offsets are relative to the byte buffer.
 */
export { dtypeSize, isDType, numel, type DType, type TypedArray } from './dtypes';
export { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from './f16';
export {
  CheckpointError,
  type DecodeOptions,
  type SafetensorsFile,
  type Tensor,
  type TensorInfo,
} from './types';
export { encodeSafetensors } from './encode';
export { decodeSafetensors, readSafetensors } from './decode';
export { READ_CHUNK_BYTES, SafetensorsReader, withSafetensors } from './reader';
export {
  writeSafetensors,
  writeSafetensorsStream,
  type TensorPlan,
  type TensorSink,
} from './writer';
export { planLayout, type PlannedTensor } from './encode';
