/**
 * The contract's fine-tuning part (GPT-1's supervised stage): the fine-tune wizard's requests,
 * evaluation and classification. Owned by the finetune feature; api.ts spreads these tables in.
 */
import { z } from 'zod';

/** Requests of this feature (name → req(paramsSchema)); see api.ts for the core ones. */
export const finetuneRequests = {};

/** Job kinds this feature starts. */
export const FINETUNE_JOB_KINDS = ['finetune', 'evaluate', 'ablation'] as const;

/** Progress events of this feature's jobs (each `type` unique across the contract). */
export const finetuneProgressSchema = z.never();

/** Results of this feature's jobs (job.done). */
export const finetuneResultSchema = z.never();
