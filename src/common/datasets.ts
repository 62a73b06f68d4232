/**
 * The contract's datasets part: the dataset library, imports, and the workspace's tokenizers
 * (the pretrain wizard's tokenizer step). Owned by the datasets feature; api.ts spreads these
 * tables in. Pretraining and its runs are common/pretrain.ts.
 */
import { z } from 'zod';
import { pathString, shortString } from './limits';
import { empty, posInt, req, runIdSchema, tokenizerKindSchema, type JobRef } from './schema';

/** Moved to the pretrain part; still importable from here. */
export type { ModelEstimate, RunInfo, RunMetrics } from './pretrain';

// ─── Shapes ────────────────────────────────────────────────────────────────────────────────────

export type DatasetFormat = 'text' | 'jsonl' | 'csv' | 'tsv' | 'json' | 'mixed';

export interface DatasetStats {
  /** Bytes of the normalized UTF-8 text. */
  bytes: number;
  /** Unicode code points. */
  chars: number;
  lines: number;
  nonEmptyLines: number;
  uniqueChars: number;
  /** Non-empty lines that repeat an earlier line. */
  duplicateLines: number;
  /** False once too many distinct lines were seen to track them all. */
  duplicatesExact: boolean;
  /** The first few thousand characters. */
  preview: string;
  /** The distinct characters, sorted (the first 400). */
  charset: string;
}

export interface DatasetManifest {
  version: 1;
  id: string;
  name: string;
  createdAt: string;
  /** sha256 of the normalized text: the same content imported again is recognized by it. */
  contentHash: string;
  format: DatasetFormat;
  /** The jsonl/json field or csv/tsv column taken as the text. */
  field?: string;
  files: Array<{
    name: string;
    bytes: number;
    sha256: string;
    format: string;
    encoding: string;
    /** A table file's copy in the dataset's folder (`sources/<name>`), for its columns. */
    stored?: string;
  }>;
  /** The normalized text files (text-000.txt, …) in the dataset's folder. */
  shards: string[];
  stats: DatasetStats;
  /** The first rows that could not be read (each names the file and row). */
  warnings: string[];
  problemCount: number;
  /** 'sample': the bundled corpus seeded on first launch. */
  source?: 'sample' | 'import';
  /** Token counts by tokenizer id. */
  tokenCounts: Record<string, number>;
}

export interface InspectResult {
  file: string;
  format: 'text' | 'jsonl' | 'csv' | 'tsv' | 'json';
  bytes: number;
  encoding?: string;
  columns: string[];
  rows: Array<Record<string, string>>;
  suggested?: string;
  problems?: string[];
}

export interface DatasetDetails {
  dataset: DatasetManifest;
  /** The engine's split: the last valFraction of the tokens validate (≈ of the text). */
  split: { valFraction: number; trainBytes: number; valBytes: number; valPreview: string };
}

/** A table file kept in the library, as the fine-tune wizard and the console offer it. */
export interface LibraryTable {
  /** The dataset's id and display name. */
  dataset: string;
  datasetName: string;
  /** The file's own name, as the user imported it. */
  name: string;
  format: string;
  bytes: number;
  /** What requests take as a data file (the copy's absolute path); not for display. */
  path: string;
}

export interface TokenizerInfo {
  id: string;
  kind: 'char' | 'bpe';
  vocabSize: number;
  datasets: string[];
  /** Tokens of the training datasets and their characters per token. */
  tokens: number;
  charsPerToken: number;
  createdAt: string;
  /** The folder with tokenizer.json (what pretraining takes). */
  dir: string;
}

export interface TokenizerPreview {
  vocabSample: string[];
  /** The first lines, token by token (each piece as text). */
  lines: Array<Array<{ id: number; text: string }>>;
  charsPerToken: number;
}

// ─── Requests ──────────────────────────────────────────────────────────────────────────────────

/** A dataset's or tokenizer's id: its folder name. */
export const datasetIdSchema = runIdSchema;

const importParams = z
  .object({
    /** Files or folders the engine can read (uploads land in workspace/uploads). */
    paths: z.array(pathString).min(1).max(1000),
    /** The names the user sees (an upload's original file name), one per path. */
    names: z.array(shortString).max(1000).optional(),
    name: z.string().max(100).optional(),
    field: shortString.min(1).optional(),
  })
  .strict();
const byId = z.object({ id: datasetIdSchema }).strict();
const getParams = z
  .object({ id: datasetIdSchema, valFraction: z.number().min(0).lt(1).optional() })
  .strict();
const inspectParams = z.object({ path: pathString }).strict();
const tokensParams = z.object({ id: datasetIdSchema, tokenizer: datasetIdSchema }).strict();
const tokenizerTrainParams = z
  .object({
    datasets: z.array(datasetIdSchema).min(1),
    kind: tokenizerKindSchema,
    vocabSize: posInt.optional(),
  })
  .strict();
const previewParams = z.object({ id: datasetIdSchema, dataset: datasetIdSchema }).strict();

export const datasetRequests = {
  /** The library, newest first (the bundled sample is seeded on first use). */
  'datasets.list': req<typeof empty, DatasetManifest[]>(empty),
  /** One dataset with its train/val split. */
  'datasets.get': req<typeof getParams, DatasetDetails>(getParams),
  /** A file's format, encoding, and for tables its columns and first rows. */
  'datasets.inspect': req<typeof inspectParams, InspectResult>(inspectParams),
  /** Imports files into the library as a `dataset.import` job. */
  'datasets.import': req<typeof importParams, JobRef>(importParams),
  'datasets.delete': req<typeof byId, { deleted: true }>(byId),
  /** The library's table files (csv, tsv, jsonl, json as imported), newest dataset first. */
  'datasets.tables': req<typeof empty, LibraryTable[]>(empty),
  /** Counts a dataset's tokens with a trained tokenizer (kept in the manifest). */
  'datasets.tokens': req<typeof tokensParams, { tokens: number; charsPerToken: number }>(
    tokensParams,
  ),
  /** Tokenizers trained in the workspace, newest first. */
  'tokenizers.list': req<typeof empty, TokenizerInfo[]>(empty),
  /** Trains a tokenizer on datasets as a `tokenizer.train` job. */
  'tokenizers.train': req<typeof tokenizerTrainParams, JobRef>(tokenizerTrainParams),
  /** A sample of the vocabulary and the first lines of a dataset, tokenized. */
  'tokenizers.preview': req<typeof previewParams, TokenizerPreview>(previewParams),
};

/** Job kinds this feature starts. */
export const DATASET_JOB_KINDS = ['dataset.import', 'tokenizer.train'] as const;

const num = z.number();

/** Progress events of this feature's jobs (each `type` unique across the contract). */
export const datasetProgressSchema = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('dataset.progress'),
    phase: z.string(),
    fraction: num,
    file: z.string(),
    bytesDone: num,
    totalBytes: num,
  }),
  z.object({
    type: z.literal('tokenizer.progress'),
    phase: z.string(),
    fraction: num,
    message: z.string(),
  }),
]);

const manifestSchema = z.custom<DatasetManifest>(
  (v) => typeof v === 'object' && v !== null && typeof (v as { id?: unknown }).id === 'string',
);
const tokenizerInfoSchema = z.custom<TokenizerInfo>(
  (v) => typeof v === 'object' && v !== null && typeof (v as { id?: unknown }).id === 'string',
);

/** Results of this feature's jobs (job.done). */
export const datasetResultSchema = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('dataset.result'),
    dataset: manifestSchema,
    duplicate: z.boolean(),
  }),
  z.object({ type: z.literal('tokenizer.result'), tokenizer: tokenizerInfoSchema }),
]);
export type DatasetProgress = z.infer<typeof datasetProgressSchema>;
export type DatasetJobResult = z.infer<typeof datasetResultSchema>;
