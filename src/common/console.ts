/**
 * The contract's prompt-console part (GPT-2 zero-shot, GPT-3 few-shot): generation, scoring (a
 * text's log-probabilities, candidate answers), prompt assembly, per-model history, sampling
 * presets, inspection and the embedding map; in-context evaluation's schemas are in consoleEval.ts
 * (re-exported here). Owned by the console feature; api.ts spreads these tables in.
 */
import { z } from 'zod';
import { itemString, LIMITS, pathString, promptString, scoreString, shortString } from './limits';
import { modelRef, nonNegInt, req, samplingSchema, type JobRef, type ScoreOutput } from './schema';
import { evalParamsSchema, iclEvalResultSchema } from './consoleEval';

export {
  consoleProgressSchema,
  labelWordSchema,
  type ConsoleProgress,
  type FinetunedBaseline,
  type IclEvalResult,
  type IclPoint,
} from './consoleEval';

const generateParamsSchema = z
  .object({ model: modelRef, prompt: promptString, sampling: samplingSchema.optional() })
  .strict();

const logprobsParamsSchema = z.union([
  z.object({ model: modelRef, text: scoreString.min(1) }).strict(),
  z
    .object({ model: modelRef, prompt: scoreString, continuation: scoreString.min(1) })
    .strict()
    .refine(
      (p) => p.prompt.length + p.continuation.length <= LIMITS.scoreChars,
      `prompt and continuation together are at most ${LIMITS.scoreChars.toLocaleString('en-US')} characters`,
    ),
]);

export const promptModeSchema = z.enum(['completion', 'zero-shot', 'few-shot']);
export type PromptMode = z.infer<typeof promptModeSchema>;

export const demoSchema = z.object({ input: promptString, output: promptString }).strict();
export type Demo = z.infer<typeof demoSchema>;

const assembleParamsSchema = z
  .object({
    model: modelRef,
    mode: promptModeSchema,
    /** The prompt (completion) or the input (zero-/few-shot). */
    text: promptString,
    /** Zero-shot: the template with {input}. Few-shot: an optional task description. */
    instruction: promptString.optional(),
    /** Few-shot: a demonstration's format with {input} and {output}. */
    format: shortString.optional(),
    demos: z.array(demoSchema).max(512).optional(),
    separator: shortString.optional(),
    /** Tokens kept free for the answer (max new tokens); at most half the context. */
    reserve: nonNegInt.optional(),
  })
  .strict();

export interface AssembledPrompt {
  prompt: string;
  tokens: number;
  context: number;
  budget: number;
  demosUsed: number;
  dropped: number;
  overflow: boolean;
  parts: Array<{ kind: 'instruction' | 'demo' | 'query'; text: string; tokens: number }>;
  /** Characters the model's tokenizer cannot encode, left out of the prompt. */
  unknown: string[];
}

const scoreChoicesParamsSchema = z
  .object({
    model: modelRef,
    context: promptString,
    candidates: z.array(itemString.min(1)).min(1).max(32),
    /** The neutral prompt of the normalized score (default "Answer:"). */
    neutral: itemString.optional(),
  })
  .strict();

export interface ChoiceScore {
  text: string;
  tokens: number[];
  /** Each token's text. */
  pieces: string[];
  logprobs: number[];
  sum: number;
  mean: number;
  normalized: number;
  neutralSum: number;
}

const tokensParamsSchema = z
  .object({ model: modelRef, ids: z.array(nonNegInt).max(20_000) })
  .strict();

const datasetParamsSchema = z
  .object({
    file: pathString,
    textColumn: shortString.min(1).optional(),
    labelColumn: shortString.min(1).optional(),
    /** Draw this many demonstrations (balanced across labels, seeded). */
    k: nonNegInt.max(256).optional(),
    seed: z.number().int().optional(),
  })
  .strict();

export interface LabeledDatasetInfo {
  file: string;
  format: string;
  columns: string[];
  textColumn: string;
  labelColumn: string;
  /** Usable examples. */
  total: number;
  labels: Array<{ label: string; count: number }>;
  demos: Demo[];
  /** The first few bad rows (each message names the file and row), and how many there were. */
  problems: Array<{ row: number; message: string }>;
  problemCount: number;
}

export const historyTokenSchema = z
  .object({
    id: z.number(),
    text: z.string(),
    logprob: z.number().nullable(),
    alternatives: z
      .array(z.object({ id: z.number(), logprob: z.number().nullable(), text: z.string() }))
      .max(20)
      .optional(),
  })
  .strict();
export type HistoryToken = z.infer<typeof historyTokenSchema>;

export const historyEntrySchema = z
  .object({
    id: z.string().min(1).max(100),
    mode: promptModeSchema,
    /** What the user typed. */
    input: z.string(),
    /** What the model saw. */
    prompt: z.string(),
    reply: z.string(),
    tokens: z.array(historyTokenSchema).max(20_000),
    sampling: samplingSchema,
    stoppedBy: z.enum(['length', 'stop', 'eos', 'cancelled', 'error']).optional(),
    error: z.string().optional(),
    createdAt: z.string(),
  })
  .strict();
export type HistoryEntry = z.infer<typeof historyEntrySchema>;

export const HISTORY_LIMIT = 200;

/**
 * The history as saved: the newest `limit` turns, and under `maxBytes` of JSON (one message over
 * the connection) by dropping the token alternatives of the oldest turns first, then their tokens,
 * then the oldest turns.
 */
export function compactHistory(
  entries: HistoryEntry[],
  limit = HISTORY_LIMIT,
  maxBytes = 8 * 1024 * 1024,
): HistoryEntry[] {
  const out = entries.slice(-limit);
  const sizes = out.map((e) => JSON.stringify(e).length + 1);
  let total = sizes.reduce((a, b) => a + b, 2);
  const replace = (i: number, e: HistoryEntry) => {
    out[i] = e;
    const n = JSON.stringify(e).length + 1;
    total += n - sizes[i]!;
    sizes[i] = n;
  };
  for (let i = 0; i < out.length && total > maxBytes; i++) {
    replace(i, { ...out[i]!, tokens: out[i]!.tokens.map(({ alternatives: _a, ...t }) => t) });
  }
  for (let i = 0; i < out.length && total > maxBytes; i++) replace(i, { ...out[i]!, tokens: [] });
  while (out.length > 1 && total > maxBytes) {
    out.shift();
    total -= sizes.shift()!;
  }
  return out;
}

/** How a model's weights are held for inference: auto picks the widest that fits. */
export const WEIGHTS_CHOICES = ['auto', 'f32', 'f16', 'q8'] as const;
export const weightsChoiceSchema = z.enum(WEIGHTS_CHOICES);
export type WeightsChoice = z.infer<typeof weightsChoiceSchema>;

/** f16/q8 against float32: |Δ log P| over the tokens of a fixed reference text, measured at load. */
export interface WeightsNumerics {
  reference: 'f32';
  /** True: the reference text; false: a fixed sequence of ids (a tokenizer that cannot encode it). */
  text: boolean;
  tokens: number;
  meanAbsDiff: number;
  maxAbsDiff: number;
}

/** How a loaded model holds its weights, and what that costs in accuracy. */
export interface WeightsInfo {
  format: 'f32' | 'f16' | 'q8';
  choice: WeightsChoice;
  /** Bytes of the weights as held. */
  bytes: number;
  /** Null for f32 (nothing to compare), or when the context is too short to score a token. */
  numerics: WeightsNumerics | null;
}

const loadParamsSchema = z
  .object({ model: modelRef, weights: weightsChoiceSchema.default('auto') })
  .strict();

const modelOnly = z.object({ model: modelRef }).strict();
const historySaveParamsSchema = z
  .object({ model: modelRef, entries: z.array(historyEntrySchema).max(HISTORY_LIMIT) })
  .strict();

export const samplingPresetNameSchema = z.string().trim().min(1).max(60);
export interface SamplingPreset {
  name: string;
  sampling: z.infer<typeof samplingSchema>;
  /** The app's own presets cannot be overwritten or deleted. */
  builtin: boolean;
}
const presetSaveParamsSchema = z
  .object({ name: samplingPresetNameSchema, sampling: samplingSchema })
  .strict();
const presetDeleteParamsSchema = z.object({ name: samplingPresetNameSchema }).strict();

/** The most prompt tokens one inspection takes (also within the model's context). */
export const INSPECT_MAX_TOKENS = 128;
/** The most attention weights (layers × heads × tokens²) one inspection's reply carries. */
export const INSPECT_MAX_ATTENTION = 4 * 2 ** 20;

/**
 * The most tokens `console.inspect` takes for a model of this shape, and what sets it: its
 * context, the cap, or the size of its attention (every layer's and head's, tokens² each).
 */
export function inspectTokenLimit(c: { blockSize: number; nLayer: number; nHead: number }): {
  max: number;
  by: 'context' | 'cap' | 'attention';
} {
  const byAttention = Math.floor(
    Math.sqrt(INSPECT_MAX_ATTENTION / Math.max(1, c.nLayer * c.nHead)),
  );
  const max = Math.max(1, Math.min(c.blockSize, INSPECT_MAX_TOKENS, byAttention));
  const by = max === c.blockSize ? 'context' : max === INSPECT_MAX_TOKENS ? 'cap' : 'attention';
  return { max, by };
}

const inspectParamsSchema = z
  .object({ model: modelRef, prompt: promptString.min(1, 'type a prompt to look inside') })
  .strict();

/** One of the tokens a layer would predict at a position, with its probability. */
export interface LensGuess {
  id: number;
  text: string;
  p: number;
}

/** How many guesses the logit lens keeps per layer and position, best first. */
export const LENS_TOP_K = 5;

/** What `console.inspect` shows of one forward pass over a prompt. */
export interface InspectResult {
  /** The tokens the model read (a fine-tuned classifier's framed as it was trained: [s] … [e]). */
  tokens: Array<{ id: number; text: string }>;
  nLayer: number;
  nHead: number;
  /** The most tokens an inspection of this model takes. */
  maxTokens: number;
  /** attention[layer][head][q][k]: how much position q attends to position k; a row sums to 1. */
  attention: number[][][][];
  /**
   * The logit lens: lens[row][pos], the tokens the final LayerNorm and the tied LM head read off
   * the residual stream at `pos`, best first. Row 0 is the embedding, row l the output of block l
   * (the last row is the model's own prediction).
   */
  lens: LensGuess[][][];
  /**
   * A fine-tuned classifier's logit per label from the last token's state of each row (as the
   * lens: after the final LayerNorm). Null for a language model, or a task whose classifier reads
   * several sequences (`unsupportedTask` then names it).
   */
  classifier: { task: string; labels: string[]; logits: number[][] } | null;
  unsupportedTask?: string;
}

const embeddingMapParamsSchema = z
  .object({ model: modelRef, query: shortString.optional() })
  .strict();

/** The most tokens the embedding map draws (the first ids of the vocabulary). */
export const EMBEDDING_MAP_POINTS = 2000;
/** The most tokens a query finds. */
export const EMBEDDING_MAP_MATCHES = 50;

export interface EmbeddingPoint {
  id: number;
  text: string;
  x: number;
  y: number;
}

/** The token embedding W_e projected on its top two principal components. */
export interface EmbeddingMap {
  /** The first `EMBEDDING_MAP_POINTS` tokens of the vocabulary. */
  points: EmbeddingPoint[];
  /** Tokens whose text contains the query (case-insensitive), anywhere in the vocabulary. */
  matches: EmbeddingPoint[];
  /** Tokens the components were computed on (the tokenizer's whole vocabulary). */
  vocabSize: number;
  /** The share of the total variance along each component, largest first. */
  explained: number[];
}

/** Requests of this feature (name → req(paramsSchema)); see api.ts for the core ones. */
export const consoleRequests = {
  /**
   * Loads a model for the console's requests with its weights held as asked (auto: the widest
   * that fits the backend's memory); later requests on the model use it. Says how the weights are
   * held and their numerics against float32.
   */
  'console.load': req<typeof loadParamsSchema, WeightsInfo>(loadParamsSchema),
  /** Starts sampling; tokens stream as generate.token events, then job.done with the result. */
  'console.generate': req<typeof generateParamsSchema, JobRef>(generateParamsSchema),
  /**
   * log P of a text, or of a continuation given a prompt, token by token. Runs as a `score` job
   * (job.started → job.done/failed, subject: the model's name) that `jobs.cancel` stops; the reply
   * is the scores, or a `cancelled` error.
   */
  'console.logprobs': req<typeof logprobsParamsSchema, ScoreOutput>(logprobsParamsSchema),
  /** Builds a prompt (completion, zero-shot or few-shot) and counts it with the model's tokenizer. */
  'console.assemble': req<typeof assembleParamsSchema, AssembledPrompt>(assembleParamsSchema),
  /**
   * Ranks candidate answers by log-likelihood: sum, per-token mean, and normalized. Runs as a
   * `score` job that `jobs.cancel` stops (the reply is then a `cancelled` error).
   */
  'console.score': req<typeof scoreChoicesParamsSchema, { choices: ChoiceScore[] }>(
    scoreChoicesParamsSchema,
  ),
  /** The text of token ids (e.g. a generated token's alternatives). */
  'console.tokens': req<typeof tokensParamsSchema, { pieces: string[] }>(tokensParamsSchema),
  /** Reads a labeled table: columns, labels, and optionally K demonstrations drawn from it. */
  'console.dataset': req<typeof datasetParamsSchema, LabeledDatasetInfo>(datasetParamsSchema),
  /** The console's saved conversation with a model, oldest first. */
  'console.history.get': req<typeof modelOnly, { entries: HistoryEntry[] }>(modelOnly),
  'console.history.save': req<typeof historySaveParamsSchema, { saved: number }>(
    historySaveParamsSchema,
  ),
  'console.history.clear': req<typeof modelOnly, { cleared: true }>(modelOnly),
  /** Sampling presets: the app's own, then the user's. */
  'console.presets.list': req<z.ZodObject<Record<string, never>>, SamplingPreset[]>(
    z.object({}).strict(),
  ),
  'console.presets.save': req<typeof presetSaveParamsSchema, SamplingPreset[]>(
    presetSaveParamsSchema,
  ),
  'console.presets.delete': req<typeof presetDeleteParamsSchema, SamplingPreset[]>(
    presetDeleteParamsSchema,
  ),
  /** Starts in-context evaluation (an `eval-icl` job): accuracy against the number of shots. */
  'console.eval.start': req<typeof evalParamsSchema, JobRef>(evalParamsSchema),
  /**
   * Looks inside one forward pass over a prompt: every layer's and head's attention, the logit
   * lens, and a fine-tuned classifier's per-label logit at each layer.
   */
  'console.inspect': req<typeof inspectParamsSchema, InspectResult>(inspectParamsSchema),
  /** The token embedding on its top two principal components, searchable by a token's text. */
  'console.embeddingMap': req<typeof embeddingMapParamsSchema, EmbeddingMap>(
    embeddingMapParamsSchema,
  ),
};

/** Job kinds this feature starts. */
export const CONSOLE_JOB_KINDS = [
  'generate',
  /** A `console.logprobs` or `console.score` request while it runs (it answers with the scores). */
  'score',
  'eval-icl',
] as const;

/** A generated token (not a job.progress event: every one is sent, none coalesced). */
export const generateTokenEventSchema = z.object({
  type: z.literal('generate.token'),
  jobId: z.string(),
  id: z.number(),
  text: z.string(),
  logprob: z.number().nullable(),
  alternatives: z.array(z.object({ id: z.number(), logprob: z.number().nullable() })).optional(),
});

/** job.done of a `generate` job: what was generated. */
const generationOutputSchema = z.object({
  ids: z.array(z.number()),
  text: z.string(),
  stoppedBy: z.enum(['length', 'stop', 'eos', 'cancelled']),
});

/**
 * job.done of a `score` job (a `console.logprobs` or `console.score` request): a summary only,
 * the scores themselves are the request's result.
 */
const scoreJobResultSchema = z.object({
  type: z.literal('score.result'),
  request: z.enum(['console.logprobs', 'console.score']),
  /** Tokens scored. */
  tokens: z.number(),
});
export type ScoreJobResult = z.infer<typeof scoreJobResultSchema>;

/** Results of this feature's jobs (job.done). */
export const consoleResultSchema = z.union([
  generationOutputSchema,
  scoreJobResultSchema,
  iclEvalResultSchema,
]);
