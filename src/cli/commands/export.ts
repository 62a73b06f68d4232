/** `export`: a model folder as a Hugging Face GPT-2 folder, a GGUF file, or a cluster folder. */
import type { OptionSpec } from '../args';
import type { Command, Context } from '../runtime';
import { MODEL_OPTION, runCheckpointOperation } from './shared';
import { formatBytes } from '../../common/format';

const OPTIONS: OptionSpec[] = [
  { ...MODEL_OPTION, description: 'the model folder to export (a run, a fine-tune, an import)' },
  {
    name: 'out',
    kind: 'string',
    value: 'DIR',
    required: true,
    description: 'destination folder; must not exist yet (or be empty)',
  },
  {
    name: 'format',
    kind: 'choice',
    value: 'hf|gguf|cluster',
    choices: ['hf', 'gguf', 'cluster'],
    default: 'hf',
    description:
      'hf: Hugging Face GPT-2 folder (openai-gpt for a GPT-1-layout model); gguf: llama.cpp file (byte-level BPE models only); cluster: a run continued on many GPUs (model, token ids, run state, a PyTorch DDP train.py for torchrun)',
  },
  {
    name: 'dtype',
    kind: 'choice',
    value: 'float32|float16',
    choices: ['float32', 'float16'],
    default: 'float32',
    description: 'weight precision of the exported files',
  },
  {
    name: 'name',
    kind: 'string',
    value: 'TEXT',
    defaultText: "the model folder's name",
    description: 'model name in the model card and GGUF metadata',
  },
];

async function run(ctx: Context): Promise<number> {
  const { args, out } = ctx;
  const { exportModel } = await import('../../engine/checkpoint/export');
  const { checkModelFiles } = await import('../../engine/checkpoint/source');
  const model = args.requireString('model');
  await checkModelFiles(model);
  const name = args.string('name');
  return runCheckpointOperation(
    out,
    'export',
    (run) =>
      exportModel({
        model,
        out: args.requireString('out'),
        format: args.string('format') as 'hf' | 'gguf' | 'cluster',
        dtype: args.string('dtype') as 'float32' | 'float16',
        ...(name ? { name } : {}),
        ...run,
      }),
    (r) => {
      out.line(
        `exported ${model} as ${r.format} (${r.dtype}) to ${r.out}: ${formatBytes(r.bytes)}`,
      );
      for (const f of r.files) out.line(`  ${f}`);
      for (const n of r.notes) out.note(`note: ${n}`);
    },
  );
}

export const command: Command = {
  command: 'export',
  summary: 'export a model: Hugging Face folder, GGUF file, or a folder to train on a cluster',
  usage: '--model DIR --out DIR [--format hf|gguf|cluster] [--dtype float32|float16]',
  description:
    'hf writes config.json, model.safetensors, tokenizer.json (+ vocab.json and merges.txt for ' +
    "BPE), generation_config.json and a README.md model card (the run's dataset, steps, losses " +
    'and hyperparameters); it loads with transformers (GPT2LMHeadModel, AutoTokenizer). gguf writes ' +
    "one llama.cpp file (architecture gpt2) when the tokenizer is GPT-2's byte-level BPE, and " +
    'refuses otherwise. cluster (a pretraining run only) writes the hf model, the corpus as token ids ' +
    "(data/train.bin, val.bin), the run's hyperparameters, the step reached with the batch sampler's " +
    "and AdamW's state, and a plain-PyTorch train.py that continues the run under torchrun " +
    '(DistributedDataParallel: nccl on GPUs, gloo on CPU) with the same schedule, optimizer and ' +
    'batches, writing Hugging Face checkpoints that import brings back (then pretrain --from or ' +
    'finetune); its README has the single- and multi-node commands. ' +
    'The destination appears only when complete. With --json the last line is ' +
    '{"type":"checkpoints.result","operation":"export","out","format","dtype","files","bytes","notes"}.',
  options: OPTIONS,
  examples: [
    'export --model runs/austen --out exports/austen-hf',
    'export --model runs/austen-bpe --out exports/austen-gguf --format gguf --dtype float16',
    'export --model runs/austen --out exports/austen-cluster --format cluster',
  ],
  run,
};
