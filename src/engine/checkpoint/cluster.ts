/**
 * "Continue on a cluster": beside the exported Hugging Face model (model/), the run's corpus as
 * JSONL (data/train.jsonl), the local run's hyperparameters (hyperparameters.json), a short
 * training script on transformers' Trainer (train.py), its requirements and a README with the
 * `accelerate launch` / `torchrun` commands. GPT Studio never runs it.
 */
import { createWriteStream, promises as fs } from 'node:fs';
import * as path from 'node:path';
import { once } from 'node:events';
import { readCorpusChunks } from '../tokenizer/corpus';
import { writeFileAtomic, writeJsonAtomic } from '../util/atomic';
import type { SourceModel } from './source';

/** The files the script reads, relative to the export folder (the test checks the script names them). */
export const CLUSTER_FILES = {
  model: 'model',
  data: 'data/train.jsonl',
  hyperparameters: 'hyperparameters.json',
  script: 'train.py',
  requirements: 'requirements.txt',
  readme: 'README.md',
} as const;

/** A JSONL record holds at most about this many characters, cut at a line break when one is near. */
const RECORD_CHARS = 8192;

interface ClusterOptions {
  name: string;
  dtype: string;
  now: Date;
  signal?: AbortSignal | undefined;
  onProgress?: (fraction: number, message: string) => void;
}

const num = (v: unknown, fallback: number) =>
  typeof v === 'number' && Number.isFinite(v) ? v : fallback;

export function clusterHyperparameters(src: SourceModel): Record<string, unknown> {
  const t = src.run?.train ?? {};
  return {
    block_size: src.config.blockSize,
    per_device_train_batch_size: num(t.batchSize, 8),
    gradient_accumulation_steps: num(t.gradAccum, 1),
    max_steps: num(t.steps, 1000),
    learning_rate: num(t.lr, 1e-3),
    min_lr: num(t.minLr, 0),
    warmup_steps: num(t.warmup, 0),
    weight_decay: num(t.weightDecay, 0.1),
    adam_beta1: num(t.beta1, 0.9),
    adam_beta2: num(t.beta2, 0.95),
    max_grad_norm: num(t.gradClip, 1),
    seed: num(t.seed, 1337),
    val_fraction: num(t.valFraction, 0.1),
    eval_steps: num(t.evalEvery, 0) || 500,
    local_run: {
      steps_done: src.run?.step ?? null,
      train_loss: src.run?.trainLoss ?? null,
      val_loss: src.run?.valLoss ?? null,
      train: t,
    },
  };
}

/** Streams the corpus into JSONL records {"text", "source"}, each ending at a line break. */
async function writeDataset(file: string, src: SourceModel, opts: ClusterOptions): Promise<number> {
  const corpus = src.run?.corpus ?? [];
  const total = corpus.reduce((s, f) => s + f.bytes, 0) || 1;
  await fs.mkdir(path.dirname(file), { recursive: true });
  const stream = createWriteStream(file);
  let records = 0;
  let done = 0;
  const write = async (text: string, source: string) => {
    if (text === '') return;
    records++;
    if (!stream.write(JSON.stringify({ text, source }) + '\n')) await once(stream, 'drain');
  };
  try {
    for (const f of corpus) {
      const source = path.basename(f.path);
      try {
        await fs.access(f.path);
      } catch {
        throw new Error(
          `the run's corpus file ${f.path} is missing, so the dataset cannot be exported`,
        );
      }
      let pending = '';
      for await (const chunk of readCorpusChunks([f.path])) {
        opts.signal?.throwIfAborted();
        pending += chunk;
        while (pending.length >= RECORD_CHARS) {
          let cut = pending.lastIndexOf('\n', RECORD_CHARS - 1) + 1;
          if (cut < RECORD_CHARS / 2) cut = RECORD_CHARS;
          // never split a surrogate pair
          if (/[\uD800-\uDBFF]/.test(pending[cut - 1] ?? '')) cut++;
          await write(pending.slice(0, cut), source);
          pending = pending.slice(cut);
        }
      }
      await write(pending, source);
      done += f.bytes;
      opts.onProgress?.(done / total, `dataset: ${source}`);
    }
  } finally {
    stream.end();
    await once(stream, 'close');
  }
  return records;
}

export function trainScript(): string {
  const f = CLUSTER_FILES;
  return `#!/usr/bin/env python3
"""Continue training a GPT Studio model on one or more GPUs with transformers' Trainer.

    accelerate launch --num_processes N ${f.script}
    torchrun --nproc_per_node N ${f.script}

Reads the model and tokenizer from ${f.model}/, the corpus from ${f.data} and the local run's
settings from ${f.hyperparameters}; any of them can be overridden on the command line (--help).
"""
import argparse
import json
import os

import torch
from transformers import AutoTokenizer, GPT2LMHeadModel, Trainer, TrainingArguments

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL_DIR = os.path.join(HERE, "${f.model}")
DATA_FILE = os.path.join(HERE, "${f.data}")
HPARAMS_FILE = os.path.join(HERE, "${f.hyperparameters}")


class Blocks(torch.utils.data.Dataset):
    """The token stream cut into block_size windows; the model shifts the labels itself."""

    def __init__(self, ids, block_size):
        n = max(0, (len(ids) - 1) // block_size)
        self.x = torch.tensor(ids[: n * block_size], dtype=torch.long).view(n, block_size)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"input_ids": self.x[i], "labels": self.x[i]}


def token_stream(tokenizer, path):
    """Every record's tokens in file order; an end-of-text token between source files."""
    ids, source = [], None
    with open(path, encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            if source is not None and record.get("source") != source and tokenizer.eos_token_id is not None:
                ids.append(tokenizer.eos_token_id)
            source = record.get("source")
            ids.extend(tokenizer(record["text"], add_special_tokens=False)["input_ids"])
    return ids


def main():
    with open(HPARAMS_FILE) as f:
        hp = json.load(f)
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output-dir", default=os.path.join(HERE, "output"))
    p.add_argument("--max-steps", type=int, default=hp["max_steps"])
    p.add_argument("--per-device-batch-size", type=int, default=hp["per_device_train_batch_size"])
    p.add_argument("--grad-accum", type=int, default=hp["gradient_accumulation_steps"],
                   help="divide by the number of GPUs to keep the local run's tokens per step")
    p.add_argument("--lr", type=float, default=hp["learning_rate"])
    p.add_argument("--warmup-steps", type=int, default=hp["warmup_steps"])
    p.add_argument("--weight-decay", type=float, default=hp["weight_decay"])
    p.add_argument("--seed", type=int, default=hp["seed"])
    args = p.parse_args()

    tokenizer = AutoTokenizer.from_pretrained(MODEL_DIR)
    tokenizer.model_max_length = int(1e12)  # whole records are tokenized, then cut into blocks
    model = GPT2LMHeadModel.from_pretrained(MODEL_DIR, torch_dtype=torch.float32)

    ids = token_stream(tokenizer, DATA_FILE)
    n_val = int(len(ids) * hp["val_fraction"])
    train_ids, val_ids = (ids[: len(ids) - n_val], ids[len(ids) - n_val :]) if n_val > 0 else (ids, [])
    block = hp["block_size"]
    train_set, val_set = Blocks(train_ids, block), Blocks(val_ids, block)
    if len(train_set) == 0:
        raise SystemExit(f"{DATA_FILE}: fewer than {block + 1} tokens to train on")

    cuda = torch.cuda.is_available()
    training_args = TrainingArguments(
        output_dir=args.output_dir,
        max_steps=args.max_steps,
        per_device_train_batch_size=args.per_device_batch_size,
        per_device_eval_batch_size=args.per_device_batch_size,
        gradient_accumulation_steps=args.grad_accum,
        learning_rate=args.lr,
        lr_scheduler_type="cosine",
        warmup_steps=args.warmup_steps,
        weight_decay=args.weight_decay,
        adam_beta1=hp["adam_beta1"],
        adam_beta2=hp["adam_beta2"],
        max_grad_norm=hp["max_grad_norm"],
        seed=args.seed,
        bf16=cuda and torch.cuda.is_bf16_supported(),
        logging_steps=10,
        save_steps=hp["eval_steps"],
        save_total_limit=2,
        report_to="none",
    )
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=train_set,
        eval_dataset=val_set if len(val_set) > 0 else None,
    )
    trainer.train()
    if len(val_set) > 0:
        print(trainer.evaluate())
    final = os.path.join(args.output_dir, "final")
    trainer.save_model(final)
    tokenizer.save_pretrained(final)


if __name__ == "__main__":
    main()
`;
}

function readme(src: SourceModel, hp: Record<string, unknown>, opts: ClusterOptions): string {
  const f = CLUSTER_FILES;
  const t = src.run?.train ?? {};
  const rows = Object.entries(hp)
    .filter(([k]) => k !== 'local_run')
    .map(([k, v]) => `| ${k} | ${String(v)} |`);
  const perStep = num(t.batchSize, 8) * num(t.gradAccum, 1) * src.config.blockSize;
  return [
    `# ${opts.name}: continue training on a cluster`,
    '',
    `Exported by GPT Studio on ${opts.now.toISOString().slice(0, 10)}. The local run stopped at step ` +
      `${src.run?.step ?? '?'} (train loss ${String(src.run?.trainLoss ?? '—')}, val loss ` +
      `${String(src.run?.valLoss ?? '—')}). This folder runs as it is on any machine with PyTorch ` +
      'and transformers; GPT Studio does not run it.',
    '',
    '## Contents',
    '',
    `- \`${f.model}/\`: the model as a Hugging Face GPT-2 folder (config.json, model.safetensors, tokenizer.json, …; ${opts.dtype})`,
    `- \`${f.data}\`: the run's corpus, one JSON object per line: \`{"text": …, "source": file name}\` (records cut at line breaks; concatenated in order they are the original text)`,
    `- \`${f.hyperparameters}\`: the local run's hyperparameters, which the script uses as defaults`,
    `- \`${f.script}\`: transformers' Trainer on the concatenated token stream, cut into ${src.config.blockSize}-token blocks; the last val_fraction of the tokens is held out`,
    `- \`${f.requirements}\`: what to pip install`,
    '',
    '## Run',
    '',
    '```sh',
    `pip install -r ${f.requirements}`,
    '# one machine, N GPUs (replace N):',
    `accelerate launch --num_processes N ${f.script}`,
    '# or, without accelerate:',
    `torchrun --nproc_per_node N ${f.script}`,
    '# several machines (M nodes of N GPUs), on each node:',
    `torchrun --nnodes M --nproc_per_node N --rdzv_backend c10d --rdzv_endpoint HOST:29500 ${f.script}`,
    '```',
    '',
    `The local run trained on ${num(t.batchSize, 8)} × ${num(t.gradAccum, 1)} sequences of ` +
      `${src.config.blockSize} tokens per step (${perStep.toLocaleString('en-US')} tokens). With N GPUs ` +
      'each step sees N times as many sequences: pass `--grad-accum` divided by N (at least 1) to keep ' +
      'the same tokens per step, or raise `--lr` with the larger batch. `python3 train.py --help` lists ' +
      'every option. Checkpoints go to `output/`, the final model to `output/final/`, which GPT Studio ' +
      'can import back (Import, or `gpt-studio import --from output/final --out DIR`).',
    '',
    '## Hyperparameters of the local run',
    '',
    '| name | value |',
    '| --- | --- |',
    ...rows,
    '',
    'Differences from the local run: the learning rate decays on a cosine to 0 rather than to ' +
      `min_lr (${String(hp.min_lr)}); dropout is config.json's (resid/embd/attn_pdrop).`,
    '',
  ].join('\n');
}

export async function writeClusterFiles(
  dir: string,
  src: SourceModel,
  opts: ClusterOptions,
): Promise<void> {
  const f = CLUSTER_FILES;
  const hp = clusterHyperparameters(src);
  await writeDataset(path.join(dir, f.data), src, opts);
  await writeJsonAtomic(path.join(dir, f.hyperparameters), hp);
  await writeFileAtomic(path.join(dir, f.script), trainScript());
  await fs.chmod(path.join(dir, f.script), 0o755);
  await writeFileAtomic(
    path.join(dir, f.requirements),
    'torch>=2.1\ntransformers>=4.40\naccelerate>=0.26\n',
  );
  await writeFileAtomic(path.join(dir, f.readme), readme(src, hp, opts));
}
