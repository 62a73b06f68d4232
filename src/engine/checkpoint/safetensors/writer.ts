/**
 * Writing a safetensors file tensor by tensor, for files larger than memory: the header is
 * planned from the tensors' names, dtypes and shapes (laid out as the Python library lays them
 * out), then each tensor's bytes are written by the caller in pieces, in file order, and the file
 * appears whole (atomically) or not at all.
 */
import { writeFileAtomicWith } from '../../util/atomic';
import { dtypeSize, numel, type DType } from './dtypes';
import { planLayout, prepareTensors, tensorBytes, type PlannedTensor } from './encode';
import { CheckpointError, type Tensor } from './types';

/** The most bytes handed to one write: a tensor's bytes go out in pieces of this size. */
const WRITE_CHUNK_BYTES = 16 * 2 ** 20;

export interface TensorPlan {
  name: string;
  dtype: DType;
  shape: number[];
}

/** Writes the next bytes of the tensor being written. */
export type TensorSink = (bytes: ArrayBufferView) => Promise<void>;

/**
 * Writes `file` from `tensors`: `fill(tensor, sink)` is called once per tensor in file order and
 * must pass exactly its bytes (∏shape × dtype size) to `sink`, in order, in any number of pieces.
 */
export async function writeSafetensorsStream(
  file: string,
  tensors: readonly TensorPlan[],
  metadata: Record<string, string> | undefined,
  fill: (tensor: PlannedTensor, sink: TensorSink) => Promise<void>,
): Promise<void> {
  const { header, order } = planLayout(
    tensors.map((t) => ({ ...t, byteLength: numel(t.shape) * dtypeSize(t.dtype) })),
    metadata,
    file,
  );
  await writeFileAtomicWith(file, async (handle) => {
    let pos = 0;
    const write = async (bytes: ArrayBufferView) => {
      const u8 = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      for (let done = 0; done < u8.length;) {
        const { bytesWritten } = await handle.write(u8, done, u8.length - done, pos);
        done += bytesWritten;
        pos += bytesWritten;
      }
    };
    await write(header);
    for (const t of order) {
      const start = pos;
      await fill(t, async (bytes) => {
        if (pos - start + bytes.byteLength > t.end - t.begin) {
          throw new CheckpointError(`more bytes than tensor '${t.name}' holds`, file, t.name);
        }
        await write(bytes);
      });
      if (pos - start !== t.end - t.begin) {
        throw new CheckpointError(
          `tensor '${t.name}' got ${pos - start} of its ${t.end - t.begin} bytes`,
          file,
          t.name,
        );
      }
    }
  });
}

/**
 * Writes tensors held in memory as a safetensors file, laid out as encodeSafetensors lays them out
 * (byte for byte), without ever making a file-sized buffer: each tensor is encoded by itself
 * (F16/BF16 converted then) and written in pieces, so a file past 4 GiB (gpt2-xl at float32) can
 * be written, and the file appears whole or not at all.
 */
export async function writeSafetensors(
  file: string,
  tensors: Record<string, Tensor> | ReadonlyMap<string, Tensor>,
  metadata?: Record<string, string>,
): Promise<void> {
  const prepared = prepareTensors(tensors, file, false);
  const byName = new Map(prepared.map((t) => [t.name, t.tensor]));
  await writeSafetensorsStream(file, prepared, metadata, async (t, sink) => {
    const bytes = tensorBytes(byName.get(t.name)!);
    const u8 = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (let at = 0; at < u8.length; at += WRITE_CHUNK_BYTES) {
      await sink(u8.subarray(at, at + WRITE_CHUNK_BYTES));
    }
  });
}
