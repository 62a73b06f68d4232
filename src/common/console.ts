/**
 * The contract's prompt-console part (GPT-2 zero-shot, GPT-3 few-shot): prompt assembly, candidate
 * scoring and in-context evaluation. Owned by the console feature; api.ts spreads these tables in.
 */
import { z } from 'zod';

/** Requests of this feature (name → req(paramsSchema)); see api.ts for the core ones. */
export const consoleRequests = {};

/** Job kinds this feature starts. */
export const CONSOLE_JOB_KINDS = ['eval-icl'] as const;

/** Progress events of this feature's jobs (each `type` unique across the contract). */
export const consoleProgressSchema = z.never();

/** Results of this feature's jobs (job.done). */
export const consoleResultSchema = z.never();
