/**
 * The contract's datasets and pretrain-wizard part: the dataset library, imports, the tokenizer
 * step and the model probe. Owned by the datasets feature; api.ts spreads these tables in.
 */
import { z } from 'zod';

/** Requests of this feature (name → req(paramsSchema)); see api.ts for the core ones. */
export const datasetRequests = {};

/** Job kinds this feature starts. */
export const DATASET_JOB_KINDS = ['dataset.import', 'tokenizer.train', 'model.probe'] as const;

/** Progress events of this feature's jobs (each `type` unique across the contract). */
export const datasetProgressSchema = z.never();

/** Results of this feature's jobs (job.done). */
export const datasetResultSchema = z.never();
