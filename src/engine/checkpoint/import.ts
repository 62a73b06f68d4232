/**
 * Import of a local Hugging Face GPT-2 folder (gpt2, distilgpt2, or the user's own) as a model
 * folder the engine uses: weights from model.safetensors (either tensor layout, with or without
 * `transformer.`; the attention-mask buffers skipped; F16/BF16 read as float32), the tokenizer from
 * tokenizer.json or vocab.json + merges.txt, gelu_new and layer_norm_epsilon from config.json.
 * Everything is checked before anything is written, and the folder appears whole or not at all.
 * The weights stream across a chunk at a time (copyGpt2Weights): neither file is held whole, so
 * a model larger than memory (gpt2-xl's 6.4 GB) imports too.
 */
import * as path from 'node:path';
import type { CheckpointProgress } from './export';
import { writeHfFolderFiles } from './export';
import { copyGpt2Weights } from './gpt2';
import { countParams } from '../model/params';
import { readSourceInfo } from './source';
import { folderBytes, listFiles, writeFolder } from './stage';

export interface ImportOptions {
  from: string;
  out: string;
  onProgress?: (p: CheckpointProgress) => void;
  signal?: AbortSignal;
  now?: Date;
}

export interface ImportResult {
  out: string;
  files: string[];
  bytes: number;
  params: number;
  vocabSize: number;
  tokenizer: string;
  notes: string[];
}

export async function importModel(opts: ImportOptions): Promise<ImportResult> {
  const from = path.resolve(opts.from);
  const report = (phase: string, fraction: number, message: string) =>
    opts.onProgress?.({ phase, fraction, message });
  report('read', 0, `reading ${from}`);
  const src = await readSourceInfo(from);
  opts.signal?.throwIfAborted();
  // an imported model has no run of ours behind it
  src.run = null;
  const notes: string[] = [];
  if (src.config.vocabSize > src.tokenizer.vocabSize) {
    notes.push(
      `the embedding has ${src.config.vocabSize} rows for ${src.tokenizer.vocabSize} tokens; the extra rows are kept but never produced by the tokenizer`,
    );
  }
  const params = countParams(src.config);
  report('write', 0.5, 'writing the model folder');
  const out = path.resolve(opts.out);
  await writeFolder(out, async (staging) => {
    await writeHfFolderFiles(staging, src, 'float32');
    await copyGpt2Weights(
      path.join(from, 'model.safetensors'),
      path.join(staging, 'model.safetensors'),
      src.config,
      { imported_from: from, exported_by: 'gpt-studio' },
      opts.signal,
    );
    opts.signal?.throwIfAborted();
  });
  report('done', 1, `imported to ${out}`);
  return {
    out,
    files: await listFiles(out),
    bytes: await folderBytes(out),
    params,
    vocabSize: src.config.vocabSize,
    tokenizer: src.tokenizer.kind,
    notes,
  };
}
