/**
 * The contract's hub part: what the Get models page lists (the curated GPT-2 family and the
 * GPT-2 snapshots in the shared Hugging Face cache) and `hub.pull`, a cancellable job that
 * downloads a model into that cache. Owned by the hub feature; api.ts spreads these tables in.
 */
import { z } from 'zod';
import { empty, req, type JobRef } from './schema';

/** A repo id as the Hub spells it: gpt2, org/name. */
export const hubRepoSchema = z
  .string()
  .min(1)
  .max(96)
  .regex(
    /^(?:[A-Za-z0-9][A-Za-z0-9_.-]*\/)?[A-Za-z0-9][A-Za-z0-9_.-]*$/,
    'must be a model repo id like gpt2 or org/name',
  );

const pullParamsSchema = z
  .object({
    repo: hubRepoSchema,
    /** A branch, tag, commit or refs/pr/N (default main). */
    revision: z.string().min(1).max(200).optional(),
    /** The Hub's address (default: the host's HF_ENDPOINT, else https://huggingface.co). */
    endpoint: z.string().min(1).max(500).optional(),
    /** An access token for gated or private repos (default: the host's HF_TOKEN). */
    token: z.string().min(1).max(500).optional(),
  })
  .strict();

/** What inference needs on the running backend, at each weight format. */
export interface HubMemory {
  budgetBytes: number;
  /** Who holds the budget: "the wasm backend", "this machine's memory". */
  holder: string;
  needs: { f32: number; f16: number; q8: number };
  /** The format `auto` would load it as; null when none fits. */
  auto: 'f32' | 'f16' | 'q8' | null;
}

export interface HubModelEntry {
  /** The repo id, with @revision for a cached snapshot of another revision than main. */
  name: string;
  repo: string;
  /** One of the curated GPT-2 family. */
  curated: boolean;
  params: number;
  nLayer: number;
  nEmbd: number;
  /** The download's size: the cached files' own, else model.safetensors' size from the shape. */
  sizeBytes: number;
  memory: HubMemory;
  /** The cached snapshot, usable now without a download (its folder is the model's `ref`). */
  cached: { ref: string; commit: string; revisions: string[]; bytes: number } | null;
}

export interface HubList {
  endpoint: string;
  /** The shared Hugging Face cache ($HF_HOME/hub). */
  cacheDir: string;
  /** Whether the host has a token (HF_TOKEN, or a saved login). */
  tokenSet: boolean;
  /** Whether HF_HUB_OFFLINE is set. */
  offline: boolean;
  models: HubModelEntry[];
}

export const hubRequests = {
  /** The curated GPT-2 models and the cached ones, with sizes and memory needs. */
  'hub.list': req<typeof empty, HubList>(empty),
  /** Starts pulling a model into the Hugging Face cache (a `pull` job: hub.progress, hub.result). */
  'hub.pull': req<typeof pullParamsSchema, JobRef>(pullParamsSchema),
};

export const HUB_JOB_KINDS = ['pull'] as const;

export const hubProgressSchema = z.object({
  type: z.literal('hub.progress'),
  phase: z.enum(['resolve', 'download', 'done']),
  file: z.string().optional(),
  bytes: z.number(),
  totalBytes: z.number(),
  bytesPerSecond: z.number(),
  etaSeconds: z.number().nullable(),
  fraction: z.number(),
  message: z.string(),
});
export type HubProgress = z.infer<typeof hubProgressSchema>;

export const hubResultSchema = z.object({
  type: z.literal('hub.result'),
  repo: z.string(),
  revision: z.string(),
  commit: z.string(),
  /** The snapshot folder: the model's `ref` in models.list. */
  dir: z.string(),
  files: z.array(z.string()),
  bytes: z.number(),
  downloadedBytes: z.number(),
  cached: z.boolean(),
  notes: z.array(z.string()),
});
export type HubResult = z.infer<typeof hubResultSchema>;
