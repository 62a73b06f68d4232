/** What a safetensors file holds once read, the options for reading one, and its error. */
import type { DType, TypedArray } from './dtypes';

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

export const METADATA_KEY = '__metadata__';
export const MAX_HEADER_SIZE = 100_000_000; // as in the Rust library
