/**
 * "Continue on a cluster": beside the exported Hugging Face model (model/), the run's corpus as
 * token ids (data/train.bin, data/val.bin, data/meta.json), the run's hyperparameters and the
 * point it reached (hyperparameters.json, training_state.json: step, the batch sampler's state,
 * AdamW's step), AdamW's moments (optimizer.safetensors), a plain-PyTorch DDP script (train.py,
 * ./clusterScript.ts) and a README with the torchrun commands. The script continues the run:
 * the same schedule, optimizer and batches, and writes Hugging Face checkpoints `import` takes back.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { DEFAULT_TRAIN, type TrainConfig } from '../../common/defaults';
import { readCorpusChunks } from '../tokenizer/corpus';
import { writeFileAtomic, writeJsonAtomic } from '../util/atomic';
import { exists } from '../util/fs';
import { Rng } from '../util/rng';
import { CLUSTER_SCRIPT } from './clusterScript';
import type { SourceModel } from './source';

/** The files the script reads, relative to the export folder (the test checks the script names them). */
export const CLUSTER_FILES = {
  model: 'model',
  data: 'data',
  trainTokens: 'data/train.bin',
  valTokens: 'data/val.bin',
  dataMeta: 'data/meta.json',
  hyperparameters: 'hyperparameters.json',
  state: 'training_state.json',
  optimizer: 'optimizer.safetensors',
  script: 'train.py',
  requirements: 'requirements.txt',
  readme: 'README.md',
} as const;

/** AdamW's ε in the engine (train/step.ts newOptimizer). */
const ADAM_EPS = 1e-8;

interface ClusterOptions {
  name: string;
  dtype: string;
  now: Date;
  signal?: AbortSignal | undefined;
  onProgress?: (fraction: number, message: string) => void;
}

/** The run's training settings, the engine's defaults where state.json lacks one. */
function trainConfigOf(src: SourceModel): TrainConfig {
  const t = src.run?.train ?? {};
  const pick = ([k, d]: [string, unknown]) => {
    const v = t[k];
    return [k, typeof v === 'number' && Number.isFinite(v) ? v : d];
  };
  return Object.fromEntries(Object.entries(DEFAULT_TRAIN).map(pick)) as unknown as TrainConfig;
}

/** hyperparameters.json: the run's settings in the script's names (its command-line defaults). */
export function clusterHyperparameters(src: SourceModel): Record<string, unknown> {
  const t = trainConfigOf(src);
  return {
    block_size: src.config.blockSize,
    train: {
      batch_size: t.batchSize,
      grad_accum: t.gradAccum,
      steps: t.steps,
      lr: t.lr,
      min_lr: t.minLr,
      warmup: t.warmup,
      weight_decay: t.weightDecay,
      beta1: t.beta1,
      beta2: t.beta2,
      eps: ADAM_EPS,
      grad_clip: t.gradClip,
      seed: t.seed,
      val_fraction: t.valFraction,
      eval_every: t.evalEvery,
      eval_iters: t.evalIters,
      save_every: t.saveEvery,
    },
    local_run: {
      steps_done: src.run?.step ?? null,
      train_loss: src.run?.trainLoss ?? null,
      val_loss: src.run?.valLoss ?? null,
      train: src.run?.train ?? {},
    },
  };
}

/** training_state.json: where the run stopped, in the form the script's own checkpoints use. */
function trainingState(src: SourceModel, adamT: number): Record<string, unknown> {
  const t = trainConfigOf(src);
  const run = src.run;
  return {
    step: run?.step ?? 0,
    // the batch sampler's state at that step (a run that never saved one starts as the engine does)
    rng: run?.rng?.length === 4 ? run.rng : new Rng(t.seed ^ 0x5eed).state(),
    adam_t: adamT,
    train_loss: run?.trainLoss ?? null,
    val_loss: run?.valLoss ?? null,
  };
}

type TokenDtype = 'uint16' | 'int32';

function encodeTokens(ids: Int32Array, dtype: TokenDtype): Uint8Array {
  if (dtype === 'int32') return new Uint8Array(ids.buffer, ids.byteOffset, ids.byteLength);
  return new Uint8Array(Uint16Array.from(ids).buffer);
}

/** The corpus as the run tokenized it: chunk by chunk, as pretraining does, then split. */
async function tokenizeCorpus(
  src: SourceModel,
  opts: ClusterOptions,
): Promise<{ train: Int32Array; val: Int32Array }> {
  const corpus = src.run?.corpus ?? [];
  for (const f of corpus) {
    if (!(await exists(f.path))) {
      throw new Error(
        `the run's corpus file ${f.path} is missing, so the dataset cannot be exported`,
      );
    }
  }
  const total = corpus.reduce((s, f) => s + f.bytes, 0) || 1;
  const pieces: number[][] = [];
  let count = 0;
  let read = 0;
  for await (const chunk of readCorpusChunks(corpus.map((f) => f.path))) {
    opts.signal?.throwIfAborted();
    const ids = src.tokenizer.encode(chunk);
    pieces.push(ids);
    count += ids.length;
    read += Buffer.byteLength(chunk);
    opts.onProgress?.(Math.min(1, read / total), `tokenizing the corpus: ${count} tokens`);
  }
  const tokens = new Int32Array(count);
  let off = 0;
  for (const p of pieces) {
    tokens.set(p, off);
    off += p.length;
  }
  const n = Math.floor(tokens.length * (1 - trainConfigOf(src).valFraction));
  return { train: tokens.subarray(0, n), val: tokens.subarray(n) };
}

/**
 * data/: the run's own train.bin and val.bin when they are there and whole (what it trained on),
 * else its corpus tokenized again with the model's tokenizer.
 */
async function writeTokens(dir: string, src: SourceModel, opts: ClusterOptions) {
  const f = CLUSTER_FILES;
  await fs.mkdir(path.join(dir, f.data), { recursive: true });
  const saved = src.run?.tokens;
  const own = ['train.bin', 'val.bin'].map((n) => path.join(src.dir, n));
  const width = saved?.dtype === 'uint16' ? 2 : saved?.dtype === 'int32' ? 4 : 0;
  let dtype: TokenDtype;
  let counts: { train: number; val: number };
  const sizes = await Promise.all(
    own.map((p) =>
      fs.stat(p).then(
        (s) => s.size,
        () => -1,
      ),
    ),
  );
  if (saved && width > 0 && sizes[0] === saved.train * width && sizes[1] === saved.val * width) {
    dtype = saved.dtype as TokenDtype;
    counts = { train: saved.train, val: saved.val };
    await fs.copyFile(own[0]!, path.join(dir, f.trainTokens));
    await fs.copyFile(own[1]!, path.join(dir, f.valTokens));
    opts.onProgress?.(1, "copied the run's tokenized corpus");
  } else {
    const splits = await tokenizeCorpus(src, opts);
    dtype = src.config.vocabSize <= 65536 ? 'uint16' : 'int32';
    counts = { train: splits.train.length, val: splits.val.length };
    await writeFileAtomic(path.join(dir, f.trainTokens), encodeTokens(splits.train, dtype));
    await writeFileAtomic(path.join(dir, f.valTokens), encodeTokens(splits.val, dtype));
  }
  const need = src.config.blockSize + 1;
  if (counts.train < need) {
    throw new Error(
      `the run's training split has ${counts.train} tokens, fewer than one block (${need}), so there is nothing to train on`,
    );
  }
  await writeJsonAtomic(path.join(dir, f.dataMeta), {
    dtype,
    byte_order: 'little',
    vocab_size: src.config.vocabSize,
    train_tokens: counts.train,
    val_tokens: counts.val,
    tokenizer: src.tokenizer.kind,
    eos_token_id: src.tokenizer.eosId ?? null,
  });
  return { dtype, ...counts };
}

/** Copies the run's AdamW moments at its step, when its checkpoint folder holds them; their t. */
async function copyOptimizer(dir: string, src: SourceModel): Promise<number | null> {
  const step = src.run?.step;
  if (step === undefined || typeof src.run?.adamT !== 'number') return null;
  const file = path.join(src.dir, `checkpoint-${step}`, 'optimizer.safetensors');
  if (!(await exists(file))) return null;
  await fs.copyFile(file, path.join(dir, CLUSTER_FILES.optimizer));
  return src.run.adamT;
}

const dataLine = (d: { dtype: string; train: number; val: number }) =>
  `${d.train.toLocaleString('en-US')} training and ${d.val.toLocaleString('en-US')} validation tokens (${d.dtype}, little-endian)`;

function readme(
  src: SourceModel,
  hp: Record<string, unknown>,
  data: { dtype: string; train: number; val: number },
  optimizer: boolean,
  opts: ClusterOptions,
): string {
  const f = CLUSTER_FILES;
  const t = trainConfigOf(src);
  const rows = Object.entries(hp.train as Record<string, unknown>).map(
    ([k, v]) => `| ${k} | ${String(v)} |`,
  );
  const perStep = t.batchSize * t.gradAccum * src.config.blockSize;
  const step = src.run?.step ?? 0;
  return [
    `# ${opts.name}: continue training on a cluster`,
    '',
    `Exported by GPT Studio on ${opts.now.toISOString().slice(0, 10)}. The local run stopped at step ` +
      `${step} of ${t.steps} (train loss ${String(src.run?.trainLoss ?? '—')}, val loss ` +
      `${String(src.run?.valLoss ?? '—')}). \`${f.script}\` continues it with PyTorch ` +
      'DistributedDataParallel: plain PyTorch (1.13 or later), nothing else to install.',
    '',
    '## Run',
    '',
    '```sh',
    '# one machine, N GPUs (or N CPU processes: gloo is used when there is no GPU):',
    `torchrun --standalone --nproc_per_node N ${f.script}`,
    '# M machines of N GPUs, this folder on each (or on a shared disk): the same command on each,',
    '# node_rank R = 0 … M-1, HOST = node 0 (rank 0 writes the checkpoints):',
    `torchrun --nnodes M --nproc_per_node N --node_rank R --rdzv_backend c10d --rdzv_endpoint HOST:29500 ${f.script}`,
    '# one process, no torchrun:',
    `python3 ${f.script}`,
    '```',
    '',
    "torch 1.13's torchrun on Python 3.11 stops at once with `'NoneType' object has no attribute " +
      "'get'`; add `--redirects 9:1 --tee 9:1` to its options.",
    '',
    `\`python3 ${f.script} --help\` lists the overrides (--steps, --lr, --batch-size, --grad-accum, ` +
      '--stop-after, --resume …). Progress is one JSON line per step on standard output and in ' +
      '`output/metrics.jsonl`.',
    '',
    '## What continues exactly',
    '',
    `- **Schedule**: step ${step} onwards of the run's warm-up (${t.warmup} steps) and cosine decay ` +
      `from ${t.lr} to ${t.minLr} at step ${t.steps}, as GPT Studio computes it.`,
    `- **Optimizer**: AdamW (β₁ ${t.beta1}, β₂ ${t.beta2}, ε ${ADAM_EPS}), weight decay ${t.weightDecay} on ` +
      `2-D weights only, the gradient's global norm clipped to ${t.gradClip}; ` +
      (optimizer
        ? `the run's moments (\`${f.optimizer}\`) and step count are loaded.`
        : 'the run left no optimizer state at this step, so the moments start at zero.'),
    `- **Batches**: random windows of ${src.config.blockSize + 1} tokens drawn with GPT Studio's generator ` +
      `from the state in \`${f.state}\`, in the order micro-batch, rank, row; rank r trains on its ` +
      `rows. With one process and the run's settings these are the batches the local run would have ` +
      `drawn next. Each step sees batch_size × grad_accum × N sequences (the local run: ` +
      `${t.batchSize} × ${t.gradAccum}, ${perStep.toLocaleString('en-US')} tokens); pass ` +
      '`--grad-accum` divided by N to keep its tokens per step.',
    "- **Not exactly**: dropout masks come from PyTorch's generator, not the engine's" +
      (opts.dtype === 'float16'
        ? '; the weights were exported as float16 and train on as float32'
        : '') +
      '.',
    '',
    '## Back into GPT Studio',
    '',
    'Every checkpoint is a Hugging Face GPT-2 folder, `output/checkpoint-STEP/` (config.json, ' +
      'model.safetensors, the tokenizer files, and `training_state.json` + `optimizer.safetensors` ' +
      `for \`--resume\`); the last 2 are kept (\`--keep\`). Bring one back and go on:`,
    '',
    '```sh',
    'gpt-studio import --from output/checkpoint-STEP --out models/NAME',
    'gpt-studio pretrain --from models/NAME --corpus FILE --out runs/NAME-more   # more pretraining',
    'gpt-studio finetune --model models/NAME --task classification --data FILE --out models/NAME-ft  # or fine-tune',
    '```',
    '',
    '## Contents',
    '',
    `- \`${f.model}/\`: the model as a Hugging Face GPT-2 folder (${opts.dtype})`,
    `- \`${f.trainTokens}\`, \`${f.valTokens}\`: the run's corpus as token ids, ${dataLine(data)}; \`${f.dataMeta}\` says so`,
    `- \`${f.hyperparameters}\`: the run's settings, the script's defaults`,
    `- \`${f.state}\`: the step reached, the batch generator's state and AdamW's step count`,
    ...(optimizer ? [`- \`${f.optimizer}\`: AdamW's moments (exp_avg.NAME, exp_avg_sq.NAME)`] : []),
    `- \`${f.script}\`: the training script; \`${f.requirements}\`: what it needs`,
    '',
    '## Hyperparameters of the local run',
    '',
    '| name | value |',
    '| --- | --- |',
    ...rows,
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
  const data = await writeTokens(dir, src, opts);
  const adamT = await copyOptimizer(dir, src);
  await writeJsonAtomic(path.join(dir, f.hyperparameters), hp);
  await writeJsonAtomic(path.join(dir, f.state), trainingState(src, adamT ?? 0));
  await writeFileAtomic(path.join(dir, f.script), CLUSTER_SCRIPT);
  await fs.chmod(path.join(dir, f.script), 0o755);
  await writeFileAtomic(
    path.join(dir, f.requirements),
    '# the script needs PyTorch only\ntorch>=1.13\n# optional: transformers checks that the final checkpoint loads with GPT2LMHeadModel\n',
  );
  await writeFileAtomic(path.join(dir, f.readme), readme(src, hp, data, adamT !== null, opts));
}
