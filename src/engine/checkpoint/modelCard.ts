/**
 * The README.md model card written with a Hugging Face export: what the model is, what it was
 * trained on and how (from the run's state.json when the model is a run), and how to load it —
 * including which parts transformers' GPT2LMHeadModel leaves out.
 */
import * as path from 'node:path';
import { isPostLn } from '../model/config';
import { countParams } from '../model/params';
import type { SourceModel } from './source';

export interface CardOptions {
  name: string;
  dtype: 'float32' | 'float16';
  date: Date;
}

const fmtNum = (x: unknown, digits = 4) =>
  typeof x === 'number' && Number.isFinite(x) ? x.toFixed(digits) : '—';

function fmtBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

function fmtParams(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}k`;
  return String(n);
}

/** Markdown table cells must not contain pipes or newlines. */
const cell = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');

export function labelsOf(raw: Record<string, unknown>): string[] {
  const id2label = raw.id2label;
  if (!id2label || typeof id2label !== 'object') return [];
  return Object.entries(id2label as Record<string, unknown>)
    .sort(([a], [b]) => Number(a) - Number(b))
    .map(([, v]) => String(v));
}

const MAX_FILES = 10;

/** The user's files by name, the first few of them. */
function fileList(files: string[]): string {
  const shown = files.slice(0, MAX_FILES).map((f) => `\`${cell(f)}\``);
  const more = files.length - shown.length;
  return shown.join(', ') + (more > 0 ? ` and ${more} more` : '');
}

/**
 * What the model was trained on, by the names the user knows: the library datasets and the files
 * they were imported from; the corpus files themselves for a run trained on files directly.
 */
function datasetText(run: NonNullable<SourceModel['run']>): string {
  const corpus = run.corpus ?? [];
  const total = corpus.reduce((s, f) => s + (f.bytes ?? 0), 0);
  if (run.datasets && run.datasets.length > 0) {
    const named = run.datasets.map((d) => `${cell(d.name)} (${fileList(d.files)})`).join('; ');
    return corpus.length > 0 ? `${named}, ${fmtBytes(total)} of text` : named;
  }
  if (corpus.length === 0) return 'not recorded';
  return (
    corpus.map((f) => `\`${path.basename(f.path)}\` (${fmtBytes(f.bytes)})`).join(', ') +
    (corpus.length > 1 ? `, ${fmtBytes(total)} in all` : '')
  );
}

export function modelCard(src: SourceModel, opts: CardOptions): string {
  const c = src.config;
  const run = src.run;
  const labels = labelsOf(src.rawConfig);
  const studio = (src.rawConfig.gpt_studio ?? null) as Record<string, unknown> | null;
  const task = studio && typeof studio.task === 'string' ? studio.task : null;
  const extraNames = [...src.extra.keys()];
  const lines: string[] = [];
  // GPT-1's post-LayerNorm layout is exported as openai-gpt (./openaiGpt.ts)
  const gpt1 = isPostLn(c);
  const cls = gpt1 ? 'OpenAIGPTLMHeadModel' : 'GPT2LMHeadModel';
  const tags = [gpt1 ? 'openai-gpt' : 'gpt2', 'text-generation', 'gpt-studio'];
  lines.push(
    '---',
    'library_name: transformers',
    'pipeline_tag: text-generation',
    'tags:',
    ...tags.map((t) => `  - ${t}`),
    '---',
    '',
    `# ${opts.name}`,
    '',
    `A ${gpt1 ? 'GPT-1' : 'GPT-2'} model (${fmtParams(countParams(c))} parameters) made with GPT Studio and exported on ` +
      `${opts.date.toISOString().slice(0, 10)} as a Hugging Face ${gpt1 ? 'openai-gpt' : 'GPT-2'} folder (${opts.dtype}).`,
    '',
    '## Model',
    '',
    '| | |',
    '| --- | --- |',
    gpt1
      ? `| architecture | OpenAIGPTLMHeadModel (GPT-1's post-LayerNorm decoder, no final LayerNorm, LM head tied to the token embedding) |`
      : `| architecture | GPT2LMHeadModel (pre-LayerNorm decoder, LM head tied to the token embedding) |`,
    `| layers × heads × width | ${c.nLayer} × ${c.nHead} × ${c.nEmbd} |`,
    `| context length | ${c.blockSize} tokens |`,
    `| vocabulary | ${c.vocabSize} tokens (${src.tokenizer.kind === 'bpe' ? 'byte-level BPE, GPT-2 style' : 'character-level'}) |`,
    `| activation | ${c.activation} |`,
    `| layer-norm epsilon | ${c.layerNormEpsilon} |`,
    `| parameters | ${countParams(c).toLocaleString('en-US')} |`,
    '',
  );

  lines.push('## Training', '');
  if (run) {
    lines.push(
      `- **Dataset**: ${datasetText(run)}`,
      `- **Steps**: ${run.step ?? '—'}${
        typeof run.train?.steps === 'number' ? ` of ${run.train.steps} planned` : ''
      }`,
      `- **Train loss**: ${fmtNum(run.trainLoss)}`,
      `- **Validation loss**: ${fmtNum(run.valLoss)} (best ${fmtNum(run.bestValLoss)})`,
      `- **Trained**: ${run.createdAt ?? '—'} to ${run.updatedAt ?? '—'}${
        run.backend ? ` on the ${run.backend} backend` : ''
      }`,
      '',
    );
    if (run.train && Object.keys(run.train).length > 0) {
      lines.push('Hyperparameters:', '', '| name | value |', '| --- | --- |');
      for (const [k, v] of Object.entries(run.train)) {
        lines.push(
          `| ${cell(k)} | ${cell(typeof v === 'object' ? JSON.stringify(v) : String(v))} |`,
        );
      }
      lines.push('');
    }
  } else {
    lines.push(
      'No training record came with this model (it was not exported from a GPT Studio run, ' +
        'or its state.json is missing): dataset, steps and losses are unknown.',
      '',
    );
  }

  if (task || labels.length > 0 || extraNames.length > 0) {
    lines.push('## Fine-tuned head', '');
    if (task) lines.push(`- **Task**: ${task}`);
    if (labels.length > 0) {
      lines.push(
        `- **Labels** (config.json \`id2label\` / \`label2id\`): ${labels.map((l) => `\`${l}\``).join(', ')}`,
      );
    }
    if (extraNames.length > 0) {
      lines.push(
        `- **Head tensors** in model.safetensors: ${extraNames.map((n) => `\`${n}\` [${src.extra.get(n)!.shape.join(', ')}]`).join(', ')}`,
      );
    }
    lines.push('');
  }

  lines.push(
    '## Use with transformers',
    '',
    '```python',
    `from transformers import AutoTokenizer, ${cls}`,
    '',
    'tokenizer = AutoTokenizer.from_pretrained("path/to/this/folder")',
    `model = ${cls}.from_pretrained("path/to/this/folder")`,
    'ids = tokenizer("Once upon a time", return_tensors="pt").input_ids',
    'print(tokenizer.decode(model.generate(ids, max_new_tokens=50, do_sample=True)[0]))',
    '```',
    '',
    'What transformers loads, and what it does not:',
    '',
    gpt1
      ? '- `OpenAIGPTLMHeadModel` loads every weight (`transformer.*`); the LM head is tied to ' +
          '`transformer.tokens_embed.weight`, so there is no separate `lm_head.weight`.'
      : '- `GPT2LMHeadModel` loads every GPT-2 weight (`transformer.*`); the LM head is tied to ' +
          '`transformer.wte.weight`, so there is no separate `lm_head.weight`.',
    `- \`AutoTokenizer\` loads tokenizer.json${src.tokenizer.kind === 'bpe' ? ' (vocab.json + merges.txt are there too, for GPT2Tokenizer)' : ' as a PreTrainedTokenizerFast (a character-level vocabulary stored as a BPE model without merges)'}.`,
  );
  if (extraNames.length > 0) {
    lines.push(
      `- **Not loaded**: ${extraNames.map((n) => `\`${n}\``).join(', ')} — GPT Studio's fine-tuned ` +
        "classification head. No transformers class has this head's layout, so from_pretrained " +
        'reports these tensors as unused and drops them. Read them with the `safetensors` library ' +
        'to use the classifier, a linear layer on the final hidden state.',
    );
  }
  if (labels.length > 0) {
    lines.push(
      `- \`id2label\` / \`label2id\` are loaded into \`model.config\` as usual, but ${cls} does not use them.`,
    );
  }
  if (c.activation === 'gelu') {
    lines.push(
      gpt1
        ? '- The activation is the exact (erf) GELU: `afn: "gelu"` in config.json.'
        : '- The activation is the exact (erf) GELU: `activation_function: "gelu"` in config.json.',
    );
  }
  lines.push('');
  return lines.join('\n');
}
