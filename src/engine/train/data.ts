/**
 * The tokenized corpus, split like nanoGPT: the first (1 − valFraction) of the tokens train, the
 * rest validate. Batches are random windows of blockSize + 1 tokens.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import * as tf from '../tf';
import type { Rng } from '../util/rng';
import { writeFileAtomic } from '../util/atomic';

export interface TokenSplits {
  train: Int32Array;
  val: Int32Array;
}

export function splitTokens(tokens: Int32Array, valFraction: number): TokenSplits {
  if (!(valFraction >= 0 && valFraction < 1)) {
    throw new Error(`val fraction must be in [0, 1), got ${valFraction}`);
  }
  const n = Math.floor(tokens.length * (1 - valFraction));
  return { train: tokens.subarray(0, n), val: tokens.subarray(n) };
}

/** Checks both splits hold at least one full window; the message names the corpus. */
export function checkSplits(s: TokenSplits, blockSize: number, label: string): void {
  const need = blockSize + 1;
  if (s.train.length < need) {
    throw new Error(
      `${label}: the training split has ${s.train.length} tokens, shorter than one block ` +
        `(${need} tokens with --block-size ${blockSize}). Use a longer corpus or a smaller --block-size.`,
    );
  }
  if (s.val.length > 0 && s.val.length < need) {
    throw new Error(
      `${label}: the validation split has ${s.val.length} tokens, shorter than one block ` +
        `(${need}). Raise the validation share (--val-percent), lower --block-size, or use ` +
        `--val-percent 0.`,
    );
  }
}

/** Random windows: x = data[i..i+T), y = data[i+1..i+T+1), as flat rows [batch · T]. */
export function sampleRows(
  data: Int32Array,
  batch: number,
  blockSize: number,
  rng: Rng,
): { x: Int32Array; y: Int32Array } {
  const x = new Int32Array(batch * blockSize);
  const y = new Int32Array(batch * blockSize);
  const span = data.length - blockSize - 1;
  for (let b = 0; b < batch; b++) {
    const i = span > 0 ? rng.int(span + 1) : 0;
    x.set(data.subarray(i, i + blockSize), b * blockSize);
    y.set(data.subarray(i + 1, i + 1 + blockSize), b * blockSize);
  }
  return { x, y };
}

/** sampleRows as tensors [batch, T]. */
export function sampleBatch(
  data: Int32Array,
  batch: number,
  blockSize: number,
  rng: Rng,
): { x: tf.Tensor2D; y: tf.Tensor2D } {
  const { x, y } = sampleRows(data, batch, blockSize, rng);
  return {
    x: tf.tensor2d(x, [batch, blockSize], 'int32'),
    y: tf.tensor2d(y, [batch, blockSize], 'int32'),
  };
}

/** Token files in a run directory (train.bin / val.bin, little-endian uint16 or int32). */
export async function saveTokens(dir: string, s: TokenSplits, vocabSize: number): Promise<string> {
  const dtype = vocabSize <= 65536 ? 'uint16' : 'int32';
  const enc = (a: Int32Array) =>
    dtype === 'uint16'
      ? new Uint8Array(Uint16Array.from(a).buffer)
      : new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  await writeFileAtomic(path.join(dir, 'train.bin'), enc(s.train));
  await writeFileAtomic(path.join(dir, 'val.bin'), enc(s.val));
  return dtype;
}

export async function loadTokens(dir: string, dtype: string): Promise<TokenSplits> {
  const read = async (name: string) => {
    const file = path.join(dir, name);
    let buf: Buffer;
    try {
      buf = await fs.readFile(file);
    } catch {
      throw new Error(`${file}: missing; the run's tokenized data cannot be found`);
    }
    const bytes = dtype === 'uint16' ? 2 : 4;
    if (buf.length % bytes !== 0) throw new Error(`${file}: truncated (${buf.length} bytes)`);
    const copy = new Uint8Array(buf).buffer;
    return dtype === 'uint16' ? Int32Array.from(new Uint16Array(copy)) : new Int32Array(copy);
  };
  return { train: await read('train.bin'), val: await read('val.bin') };
}
