/**
 * The contract's fine-tuning part (GPT-1's supervised stage): the fine-tune wizard's requests,
 * evaluation and classification. Owned by the finetune feature; api.ts spreads these tables in.
 */
import { z } from 'zod';
import { itemString, pathString, shortString } from './limits';
import { MAX_TRAIN_WORKERS } from './defaults';
import { modelRef, posInt, req, type JobRef } from './schema';

export const FINETUNE_TASKS = [
  'classification',
  'entailment',
  'similarity',
  'multiple-choice',
] as const;
export const finetuneTaskSchema = z.enum(FINETUNE_TASKS);
export type FinetuneTask = z.infer<typeof finetuneTaskSchema>;

const column = shortString.min(1);
/** Which column of the labeled file holds what; the task says which are needed. */
export const columnMapSchema = z
  .object({
    text: column,
    premise: column,
    hypothesis: column,
    a: column,
    b: column,
    context: column,
    /** One column per answer (multiple choice)… */
    answers: z.array(column).min(2),
    /** …or one column holding a JSON array of answers. */
    answersColumn: column,
    label: column,
  })
  .partial()
  .strict();
export type ColumnMap = z.infer<typeof columnMapSchema>;

/**
 * The fields each task reads, in order, the label last: the one table of them (the wizard's
 * column mapping, the classifier's inputs). `answers` stands for the answer columns or the one
 * answers column.
 */
export const FINETUNE_TASK_FIELDS = {
  classification: ['text', 'label'],
  entailment: ['premise', 'hypothesis', 'label'],
  similarity: ['a', 'b', 'label'],
  'multiple-choice': ['context', 'answers', 'label'],
} as const satisfies Record<FinetuneTask, ReadonlyArray<keyof ColumnMap>>;
export type TaskField = (typeof FINETUNE_TASK_FIELDS)[FinetuneTask][number];

/** The fields a task reads (FINETUNE_TASK_FIELDS), in order. */
export function taskFields(task: FinetuneTask): readonly TaskField[] {
  return FINETUNE_TASK_FIELDS[task];
}

/** GPT-1's fine-tuning hyperparameters (§4.1), all editable. */
export const finetuneSettingsSchema = z
  .object({
    lr: z.number().positive(),
    batchSize: posInt,
    epochs: posInt,
    /** Linear warmup over this fraction of training, then linear decay to 0. */
    warmup: z.number().min(0).max(1),
    /** Dropout on h before the classifier W_y. */
    clfDropout: z.number().min(0).lt(1),
    /** λ in L3 = L2 + λ·L1. */
    lambda: z.number().min(0),
    weightDecay: z.number().min(0),
    /** Share of the data held out for validation when no validation file is given. */
    valFraction: z.number().min(0).lt(1),
    init: z.enum(['pretrained', 'random']),
    seed: z.number().int(),
  })
  .partial()
  .strict();
export type FinetuneSettings = Required<z.infer<typeof finetuneSettingsSchema>>;

export const GPT1_FINETUNE: FinetuneSettings = {
  lr: 6.25e-5,
  batchSize: 32,
  epochs: 3,
  warmup: 0.002,
  clfDropout: 0.1,
  lambda: 0.5,
  weightDecay: 0.01,
  valFraction: 0.1,
  init: 'pretrained',
  seed: 42,
};

const dataParams = {
  model: modelRef,
  task: finetuneTaskSchema,
  columns: columnMapSchema,
  /** The labeled file (CSV, TSV or JSONL). */
  data: pathString,
  /** A separate validation file (same columns); otherwise a split of `data`. */
  valData: pathString.optional(),
};
const previewParamsSchema = z
  .object({ ...dataParams, valFraction: z.number().min(0).lt(1).optional() })
  .strict();
const startParamsSchema = z
  .object({
    ...dataParams,
    settings: finetuneSettingsSchema.optional(),
    /** Data-parallel training workers on wasm and cpu (default 1: one thread). */
    workers: posInt.max(MAX_TRAIN_WORKERS).optional(),
    /** The fine-tune's folder name under workspace/finetunes (default: derived from the model). */
    name: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/, 'must be a folder name')
      .optional(),
  })
  .strict();
/**
 * GPT vs BERT: a causal GPT and a masked-LM pretrained as `model`'s run was (its corpus, tokenizer,
 * size and settings), for `pretrainSteps` each (default: the run's own), then fine-tuned alike.
 */
const gptBertParamsSchema = startParamsSchema
  .omit({ name: true })
  .extend({ pretrainSteps: posInt.max(1_000_000).optional() })
  .strict();
const evaluateParamsSchema = z
  .object({ model: modelRef, data: pathString, columns: columnMapSchema.optional() })
  .strict();
export const classifyInputSchema = z.union([
  z.object({ text: itemString }).strict(),
  z.object({ premise: itemString, hypothesis: itemString }).strict(),
  z.object({ a: itemString, b: itemString }).strict(),
  z.object({ context: itemString, answers: z.array(itemString).min(1).max(32) }).strict(),
]);
export type ClassifyInput = z.infer<typeof classifyInputSchema>;
const classifyParamsSchema = z.object({ model: modelRef, input: classifyInputSchema }).strict();
const columnsParamsSchema = z.object({ file: pathString }).strict();

export interface RowProblemInfo {
  row: number;
  message: string;
}

/** What one file gave: rows read, examples kept, and why the others were skipped. */
export interface ImportCounts {
  file: string;
  rows: number;
  imported: number;
  skipped: number;
  /** The first problems (at most 50), each naming the file and row. */
  problems: RowProblemInfo[];
}

export interface TokenPiece {
  id: number;
  text: string;
  /** Set for GPT-1's markers. */
  special?: 'start' | 'delim' | 'extract';
}

export interface FinetunePreview {
  task: FinetuneTask;
  train: ImportCounts;
  val: ImportCounts | null;
  /** Examples held out from `data` when no validation file is given. */
  valSplit: number;
  labels: Array<{ label: string; count: number }>;
  /** One example as the model will read it. */
  example: { input: string; label: string; sequences: TokenPiece[][]; truncated: boolean } | null;
  /** How many training examples had to be truncated to fit the context. */
  truncated: number;
  blockSize: number;
  /** The tokens the model's vocabulary gains ([s], $, [e] when missing). */
  newTokens: string[];
}

export interface TableColumns {
  file: string;
  format: string;
  columns: string[];
  /** The first rows, for a look. */
  sample: Array<Record<string, string>>;
  /** A guess of the mapping per task, from the column names. */
  guess: ColumnMap;
}

export interface ClassMetrics {
  label: string;
  precision: number;
  recall: number;
  f1: number;
  support: number;
}

export interface Mistake {
  row: number;
  input: string;
  label: string;
  predicted: string;
  confidence: number;
}

export interface FinetuneMetrics {
  n: number;
  accuracy: number;
  macroF1: number;
  /** Similarity with two labels: F1 of the positive label. */
  f1?: number;
  positiveLabel?: string;
  labels: string[];
  /** confusion[true][predicted] */
  confusion: number[][];
  perClass: ClassMetrics[];
  /** The most confident wrong predictions, most confident first. */
  mistakes: Mistake[];
}

export const finetuneRequests = {
  /** The columns and first rows of a labeled CSV/TSV/JSONL file, with a guessed mapping. */
  'finetune.columns': req<typeof columnsParamsSchema, TableColumns>(columnsParamsSchema),
  /** Reads the data with a mapping: counts, per-row problems, labels and balance, one example's tokens. */
  'finetune.preview': req<typeof previewParamsSchema, FinetunePreview>(previewParamsSchema),
  /** Starts fine-tuning into workspace/finetunes/<name>; progress arrives as finetune.* events. */
  'finetune.start': req<typeof startParamsSchema, JobRef>(startParamsSchema),
  /** The same fine-tune from pretrained and random init, with λ and with λ = 0, one after another. */
  'finetune.ablation': req<typeof startParamsSchema, JobRef>(startParamsSchema),
  /** GPT vs BERT: both pretrained like the model's run, then fine-tuned on the data; nothing kept. */
  'finetune.gptBert': req<typeof gptBertParamsSchema, JobRef>(gptBertParamsSchema),
  /** Evaluates a fine-tuned model on a labeled file (columns default to the ones it was trained with). */
  'finetune.evaluate': req<typeof evaluateParamsSchema, JobRef>(evaluateParamsSchema),
  /** P(y | x) of a fine-tuned model for one input: a probability per label (per answer for multiple choice). */
  'finetune.classify': req<typeof classifyParamsSchema, { labels: string[]; probs: number[] }>(
    classifyParamsSchema,
  ),
};

/** Job kinds this feature starts. */
export const FINETUNE_JOB_KINDS = ['finetune', 'evaluate', 'ablation', 'gpt-bert'] as const;

const num = z.number();
const variant = z.string().optional();
/** The two sides of GPT vs BERT: a causal LM and a masked-LM of the same size. */
export const gptBertModelSchema = z.enum(['GPT', 'BERT']);
export type GptBertModel = z.infer<typeof gptBertModelSchema>;
/** Progress events of this feature's jobs (each `type` unique across the contract). */
export const finetuneProgressSchema = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('finetune.start'),
    variant,
    task: finetuneTaskSchema,
    labels: z.array(z.string()),
    trainExamples: num,
    valExamples: num,
    totalSteps: num,
    epochs: num,
    params: num,
    newTokens: z.array(z.string()),
    init: z.enum(['pretrained', 'random']),
    lambda: num,
    backend: z.string(),
  }),
  z.object({
    type: z.literal('finetune.step'),
    variant,
    step: num,
    totalSteps: num,
    epoch: num,
    /** L3 = L2 + λ·L1 */
    loss: num,
    /** the classification loss */
    l2: num,
    /** the language-modeling loss on the same sequences */
    l1: num,
    lr: num,
    elapsedMs: num,
    etaMs: num,
    examplesPerSecond: num,
  }),
  z.object({
    type: z.literal('finetune.epoch'),
    variant,
    epoch: num,
    epochs: num,
    step: num,
    valAccuracy: num,
    valLoss: num,
  }),
  z.object({
    type: z.literal('finetune.variant'),
    variant: z.string(),
    index: num,
    count: num,
    init: z.enum(['pretrained', 'random']),
    lambda: num,
  }),
  z.object({ type: z.literal('evaluate.progress'), done: num, total: num }),
  /** GPT vs BERT: which model (of 2) is being pretrained or fine-tuned. */
  z.object({
    type: z.literal('gptbert.phase'),
    model: gptBertModelSchema,
    phase: z.enum(['pretrain', 'finetune']),
    index: num,
    count: num,
  }),
  /** GPT vs BERT: a pretraining step. */
  z.object({
    type: z.literal('gptbert.step'),
    model: gptBertModelSchema,
    step: num,
    totalSteps: num,
    trainLoss: num,
    etaMs: num,
  }),
]);
export type FinetuneProgress = z.infer<typeof finetuneProgressSchema>;

const metricsSchema: z.ZodType<FinetuneMetrics> = z.object({
  n: num,
  accuracy: num,
  macroF1: num,
  f1: num.optional(),
  positiveLabel: z.string().optional(),
  labels: z.array(z.string()),
  confusion: z.array(z.array(num)),
  perClass: z.array(
    z.object({ label: z.string(), precision: num, recall: num, f1: num, support: num }),
  ),
  mistakes: z.array(
    z.object({
      row: num,
      input: z.string(),
      label: z.string(),
      predicted: z.string(),
      confidence: num,
    }),
  ),
});

const historySchema = z.array(z.object({ epoch: num, step: num, valAccuracy: num, valLoss: num }));

export const finetuneResultObjectSchema = z.object({
  type: z.literal('finetune.result'),
  /** The saved checkpoint's folder (absent for ablation variants, which are not saved). */
  outDir: z.string().optional(),
  task: finetuneTaskSchema,
  labels: z.array(z.string()),
  init: z.enum(['pretrained', 'random']),
  lambda: num,
  /** 'cancelled' when stopped early (the model so far is saved). */
  outcome: z.enum(['completed', 'cancelled']),
  steps: num,
  elapsedMs: num,
  /** Metrics on the validation set ('val'), or on the training set when there is none. */
  evaluatedOn: z.enum(['val', 'train']),
  metrics: metricsSchema,
  history: historySchema,
});
export type FinetuneResult = z.infer<typeof finetuneResultObjectSchema>;

export const ablationResultSchema = z.object({
  type: z.literal('ablation.result'),
  task: finetuneTaskSchema,
  elapsedMs: num,
  variants: z.array(
    z.object({
      variant: z.string(),
      init: z.enum(['pretrained', 'random']),
      lambda: num,
      accuracy: num,
      macroF1: num,
      f1: num.optional(),
      elapsedMs: num,
      history: historySchema,
    }),
  ),
});
export type AblationResult = z.infer<typeof ablationResultSchema>;

export const gptBertResultSchema = z.object({
  type: z.literal('gptbert.result'),
  task: finetuneTaskSchema,
  elapsedMs: num,
  /** What both were pretrained with. */
  pretrain: z.object({
    corpus: z.array(z.string()),
    steps: num,
    nLayer: num,
    nHead: num,
    nEmbd: num,
    blockSize: num,
  }),
  rows: z.array(
    z.object({
      model: gptBertModelSchema,
      objective: z.enum(['clm', 'mlm']),
      params: num,
      /**
       * The last validation loss of pretraining (the training loss without a validation split):
       * next-token for GPT, masked-token for BERT, so the two are not comparable.
       */
      pretrainLoss: num,
      pretrainMs: num,
      accuracy: num,
      macroF1: num,
      f1: num.optional(),
      finetuneMs: num,
      history: historySchema,
    }),
  ),
});
export type GptBertResult = z.infer<typeof gptBertResultSchema>;

export const evaluateResultSchema = z.object({
  type: z.literal('evaluate.result'),
  model: z.string(),
  data: z.string(),
  task: finetuneTaskSchema,
  import: z.object({
    file: z.string(),
    rows: num,
    imported: num,
    skipped: num,
    problems: z.array(z.object({ row: num, message: z.string() })),
  }),
  accuracy: num,
  macroF1: num,
  confusion: z.array(z.array(num)),
  metrics: metricsSchema,
});
export type EvaluateResult = z.infer<typeof evaluateResultSchema>;

/** Results of this feature's jobs (job.done). */
export const finetuneResultSchema = z.discriminatedUnion('type', [
  finetuneResultObjectSchema,
  ablationResultSchema,
  gptBertResultSchema,
  evaluateResultSchema,
]);
