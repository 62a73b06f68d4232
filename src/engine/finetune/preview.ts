/**
 * The fine-tune wizard's preview: what fine-tuning a model on these files would read — the
 * examples imported and left out, the labels, one example as the model's tokens, how many are
 * truncated — without loading the model's weights.
 */
import * as path from 'node:path';
import { GPT1_FINETUNE, type FinetunePreview, type TokenPiece } from '../../common/finetune';
import { readHfConfig } from '../checkpoint/gpt2';
import { loadTokenizer } from '../tokenizer';
import { labelCounts, MAX_PROBLEMS } from './data';
import { encodeAll } from './encode';
import { readFinetuneData, type FinetuneFiles } from './load';
import { addFinetuneTokens, describeInput, encodeExample } from './tasks';

export async function previewFinetune(
  opts: FinetuneFiles & {
    /** The pretrained model's folder. */
    model: string;
    valFraction?: number;
  },
): Promise<FinetunePreview> {
  const { task } = opts;
  const d = await readFinetuneData({
    ...opts,
    valFraction: opts.valFraction ?? GPT1_FINETUNE.valFraction,
    seed: GPT1_FINETUNE.seed,
  });
  const tokenizer = await loadTokenizer(opts.model);
  const { blockSize } = await readHfConfig(path.join(opts.model, 'config.json'));
  const before = tokenizer.vocabSize;
  const sp = addFinetuneTokens(tokenizer);
  const newTokens = Object.values(sp)
    .filter((id) => id >= before)
    .map((id) => tokenizer.idToToken(id)!);
  const kinds = new Map<number, TokenPiece['special']>([
    [sp.start, 'start'],
    [sp.delim, 'delim'],
    [sp.extract, 'extract'],
  ]);

  // a row the model's tokenizer cannot encode (a character it never saw) is left out
  const { encoded, truncated, problems } = encodeAll(d.train, task, tokenizer, sp, blockSize);
  const counts = d.trainImport;
  for (const p of problems) counts.problems.push({ ...p, message: `${counts.file} ${p.message}` });
  counts.imported -= problems.length;
  counts.skipped += problems.length;
  counts.problems.sort((a, b) => a.row - b.row).splice(MAX_PROBLEMS);

  const first = encoded[0]?.example;
  let example: FinetunePreview['example'] = null;
  if (first) {
    const enc = encodeExample(task, first.input, tokenizer, sp, blockSize);
    example = {
      input: describeInput(first.input),
      label: d.labels[first.label] ?? String(first.label),
      truncated: enc.truncated,
      sequences: enc.sequences.map((seq) =>
        seq.map((id) => {
          const special = kinds.get(id);
          return { id, text: tokenizer.decode([id]), ...(special ? { special } : {}) };
        }),
      ),
    };
  }
  return {
    task,
    train: counts,
    val: d.valImport,
    valSplit: opts.valData ? 0 : d.val.length,
    labels: labelCounts([...encoded.map((e) => e.example), ...d.val], d.labels),
    example,
    truncated,
    blockSize,
    newTokens,
  };
}
