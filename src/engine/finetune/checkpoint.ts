/**
 * The fine-tuned checkpoint: a Hugging Face GPT-2 folder whose safetensors carry
 * `classifier.weight` [C, K] and `classifier.bias` [K], and whose config.json carries `id2label`,
 * `label2id` and `gpt_studio` (task, λ, columns, …); finetune.json keeps the metrics, the history
 * and which rows of the training file it trained on.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import type { ColumnMap, FinetuneResult, FinetuneSettings } from '../../common/finetune';
import { loadGpt2Weights, readHfConfig, saveGpt2Weights, writeHfConfig } from '../checkpoint/gpt2';
import { GPT } from '../model/gpt';
import { loadTokenizer } from '../tokenizer';
import { DELIMITER_TOKEN, EXTRACT_TOKEN, START_TOKEN, type Tokenizer } from '../tokenizer/types';
import { writeJsonAtomic } from '../util/atomic';
import { ClassifierHead } from './head';
import type { SpecialIds, Task } from './tasks';
import { TRAINED_ROWS_KEY, type TrainedRows } from './trainedRows';

export interface FinetuneMeta {
  task: Task;
  labels: string[];
  lambda: number;
  init: 'pretrained' | 'random';
  columns: ColumnMap;
  base: string;
  settings: FinetuneSettings;
  newTokens: string[];
  data: { train: string; val?: string };
  /** Which rows of the training file it trained on (see ./trainedRows.ts). */
  trainedRows: TrainedRows;
  result: FinetuneResult;
}

/** The fine-tuned checkpoint (see the header); finetune.json keeps the metrics and history. */
export async function saveFinetuned(
  dir: string,
  model: GPT,
  head: ClassifierHead,
  tokenizer: Tokenizer,
  meta: FinetuneMeta,
): Promise<void> {
  await fs.mkdir(dir, { recursive: true });
  await tokenizer.save(dir);
  const eos = tokenizer.eosId ?? null;
  const id2label = Object.fromEntries(meta.labels.map((l, i) => [String(i), l]));
  const label2id = Object.fromEntries(meta.labels.map((l, i) => [l, i]));
  await writeHfConfig(path.join(dir, 'config.json'), model.config, {
    bos_token_id: eos,
    eos_token_id: eos,
    id2label,
    label2id,
    summary_first_dropout: meta.settings.clfDropout,
    gpt_studio: {
      task: meta.task,
      lambda: meta.lambda,
      init: meta.init,
      columns: meta.columns,
      base_model: meta.base,
      special_tokens: {
        start: START_TOKEN,
        delimiter: DELIMITER_TOKEN,
        extract: EXTRACT_TOKEN,
      },
      added_tokens: meta.newTokens,
      classifier: { weight: 'classifier.weight', bias: 'classifier.bias', outputs: head.outputs },
      settings: meta.settings,
    },
  });
  await writeJsonAtomic(path.join(dir, 'generation_config.json'), {
    bos_token_id: eos,
    eos_token_id: eos,
    transformers_version: '4.46.0',
  });
  const extra = new Map([
    [
      'classifier.weight',
      { shape: head.weight.shape, data: (await head.weight.data()) as Float32Array },
    ],
    ['classifier.bias', { shape: head.bias.shape, data: (await head.bias.data()) as Float32Array }],
  ]);
  await saveGpt2Weights(path.join(dir, 'model.safetensors'), model.config, await model.weights(), {
    extra,
    metadata: { gpt_studio_task: meta.task },
  });
  await writeJsonAtomic(path.join(dir, 'finetune.json'), {
    task: meta.task,
    labels: meta.labels,
    base: meta.base,
    data: meta.data,
    [TRAINED_ROWS_KEY]: meta.trainedRows,
    settings: meta.settings,
    result: meta.result,
    savedAt: new Date().toISOString(),
  });
}

export interface LoadedClassifier {
  dir: string;
  model: GPT;
  head: ClassifierHead;
  tokenizer: Tokenizer;
  task: Task;
  labels: string[];
  special: SpecialIds;
  columns: ColumnMap;
  dispose(): void;
}

/** Loads a fine-tuned model folder (its config.json has gpt_studio.task and the head's tensors). */
export async function loadClassifier(dir: string): Promise<LoadedClassifier> {
  const configFile = path.join(dir, 'config.json');
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(await fs.readFile(configFile, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new Error(`${configFile}: cannot read (${(err as Error).message})`);
  }
  const studio = raw.gpt_studio as { task?: unknown; columns?: ColumnMap } | undefined;
  const task = studio?.task as Task | undefined;
  if (!task) {
    throw new Error(
      `${dir}: not a fine-tuned classifier (config.json has no gpt_studio.task); fine-tune it first`,
    );
  }
  const id2label = (raw.id2label ?? {}) as Record<string, string>;
  const labels = Object.keys(id2label)
    .sort((a, b) => Number(a) - Number(b))
    .map((k) => String(id2label[k]));
  const config = await readHfConfig(configFile);
  const tokenizer = await loadTokenizer(dir);
  const { params, extra } = await loadGpt2Weights(path.join(dir, 'model.safetensors'), config);
  const w = extra.get('classifier.weight');
  const b = extra.get('classifier.bias');
  if (!w || !b) throw new Error(`${dir}/model.safetensors: no classifier.weight / classifier.bias`);
  const sp = tokenizer.specialTokens;
  const special = {
    start: sp.get(START_TOKEN),
    delim: sp.get(DELIMITER_TOKEN),
    extract: sp.get(EXTRACT_TOKEN),
  };
  if (special.start === undefined || special.delim === undefined || special.extract === undefined) {
    throw new Error(
      `${dir}: the tokenizer lacks ${START_TOKEN}, ${DELIMITER_TOKEN} or ${EXTRACT_TOKEN}`,
    );
  }
  const model = new GPT(config, params);
  const head = new ClassifierHead(config.nEmbd, w.shape[1]!, { weight: w.data, bias: b.data });
  return {
    dir,
    model,
    head,
    tokenizer,
    task,
    labels,
    special: special as SpecialIds,
    columns: studio?.columns ?? {},
    dispose: () => {
      head.dispose();
      model.dispose();
    },
  };
}
