/**
 * The contract's checkpoints part: export (Hugging Face, GGUF, cluster folder) and import of GPT-2
 * directories. Owned by the checkpoints feature; api.ts spreads these tables in.
 */
import { z } from 'zod';

/** Requests of this feature (name → req(paramsSchema)); see api.ts for the core ones. */
export const checkpointRequests = {};

/** Job kinds this feature starts. */
export const CHECKPOINT_JOB_KINDS = ['export', 'import'] as const;

/** Progress events of this feature's jobs (each `type` unique across the contract). */
export const checkpointProgressSchema = z.never();

/** Results of this feature's jobs (job.done). */
export const checkpointResultSchema = z.never();
