/** `import`: a local Hugging Face GPT-2 folder (gpt2, distilgpt2, your own) as a model folder. */
import type { OptionSpec } from '../args';
import { formatCount } from '../output';
import type { Command, Context } from '../runtime';
import { runCheckpointOperation } from './shared';
import { formatBytes } from '../../common/format';

const OPTIONS: OptionSpec[] = [
  {
    name: 'from',
    kind: 'string',
    value: 'DIR',
    required: true,
    description:
      'a Hugging Face GPT-2 folder: config.json, model.safetensors, tokenizer.json or vocab.json + merges.txt',
  },
  {
    name: 'out',
    kind: 'string',
    value: 'DIR',
    required: true,
    description: 'the new model folder; must not exist yet (or be empty)',
  },
];

async function run(ctx: Context): Promise<number> {
  const { args, out } = ctx;
  const { importModel } = await import('../../engine/checkpoint/import');
  const from = args.requireString('from');
  return runCheckpointOperation(
    out,
    'import',
    (run) => importModel({ from, out: args.requireString('out'), ...run }),
    (r) => {
      out.line(
        `imported ${from} to ${r.out}: ${formatCount(r.params)} parameters, ${r.vocabSize} tokens (${r.tokenizer}), ${formatBytes(r.bytes)}`,
      );
      for (const n of r.notes) out.note(`note: ${n}`);
      out.note(`  generate: gpt-studio generate --model ${r.out} --prompt "..."`);
    },
  );
}

export const command: Command = {
  command: 'import',
  summary: 'import a Hugging Face GPT-2 folder (gpt2, distilgpt2, your own)',
  usage: '--from DIR --out DIR',
  description:
    'Checks and copies a local GPT-2 folder into a model folder the engine uses for generate, ' +
    'score, fine-tuning and export. Weights come from model.safetensors, with or without the ' +
    "'transformer.' prefix (the causal-mask buffers h.N.attn.bias / attn.masked_bias are skipped; " +
    'F16/BF16 become float32); pytorch_model.bin is refused because unpickling can run code. ' +
    'gelu_new and layer_norm_epsilon come from config.json. Every tensor is checked first and ' +
    'the destination appears only when complete. With --json the last line is ' +
    '{"type":"checkpoints.result","operation":"import","out","files","bytes","params","vocabSize","tokenizer","notes"}.',
  options: OPTIONS,
  examples: [
    'import --from ~/models/gpt2 --out workspace/models/gpt2',
    'import --from ~/models/distilgpt2 --out models/distilgpt2 --json',
  ],
  run,
};
