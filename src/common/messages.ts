/**
 * What travels between the processes: the events (host → UI) and the wire messages (client ⇄
 * server, server ⇄ host, main ⇄ host: the same shapes), with the schemas that validate them at
 * every boundary. Each feature contributes its job progress and results. Pure: no Node APIs.
 */
import { z } from 'zod';
import { checkpointProgressSchema, checkpointResultSchema } from './checkpoints';
import { consoleProgressSchema, consoleResultSchema, generateTokenEventSchema } from './console';
import { datasetProgressSchema, datasetResultSchema } from './datasets';
import { finetuneProgressSchema, finetuneResultSchema } from './finetune';
import { hubProgressSchema, hubResultSchema } from './hub';
import { jobKindSchema } from './jobs';
import { pretrainProgressSchema, pretrainResultSchema } from './pretrain';
import { apiErrorSchema } from './schema';

// ─── Events (host → UI) ────────────────────────────────────────────────────────────────────────

/**
 * JSON has no NaN/Infinity (a step's loss can be NaN just before the engine stops the run):
 * such numbers travel as null.
 */
export const apiEventSchema = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('job.started'),
    jobId: z.string(),
    kind: jobKindSchema,
    /** The run being trained (pretrain/resume). */
    runId: z.string().optional(),
    /** What another job works on (a model, a dataset), in a few words for the status bar. */
    subject: z.string().optional(),
  }),
  /** A feature's progress event of a job (step events coalesced to ≤ ~10/s). */
  z.object({
    type: z.literal('job.progress'),
    jobId: z.string(),
    event: z.union([
      pretrainProgressSchema,
      datasetProgressSchema,
      finetuneProgressSchema,
      consoleProgressSchema,
      checkpointProgressSchema,
      hubProgressSchema,
    ]),
  }),
  z.object({
    type: z.literal('job.done'),
    jobId: z.string(),
    kind: jobKindSchema,
    result: z.union([
      pretrainResultSchema,
      consoleResultSchema,
      datasetResultSchema,
      finetuneResultSchema,
      checkpointResultSchema,
      hubResultSchema,
    ]),
  }),
  z.object({
    type: z.literal('job.failed'),
    jobId: z.string(),
    kind: jobKindSchema,
    error: apiErrorSchema,
  }),
  generateTokenEventSchema,
  z.object({
    type: z.literal('log'),
    level: z.enum(['info', 'warn', 'error']),
    message: z.string(),
  }),
]);
export type ApiEvent = z.infer<typeof apiEventSchema>;
export type ApiEventType = ApiEvent['type'];
export type EventOf<T extends ApiEventType> = Extract<ApiEvent, { type: T }>;

// ─── Wire messages ─────────────────────────────────────────────────────────────────────────────

export const invokeMessageSchema = z.object({
  id: z.union([z.string(), z.number()]),
  type: z.literal('invoke'),
  name: z.string(),
  params: z.unknown().optional(),
});
export type InvokeMessage = z.infer<typeof invokeMessageSchema>;

export const replyMessageSchema = z.discriminatedUnion('type', [
  z.object({
    id: z.union([z.string(), z.number()]),
    type: z.literal('result'),
    result: z.unknown(),
  }),
  z.object({
    id: z.union([z.string(), z.number()]),
    type: z.literal('error'),
    error: apiErrorSchema,
  }),
  z.object({ type: z.literal('event'), event: apiEventSchema }),
]);
export type ReplyMessage = z.infer<typeof replyMessageSchema>;

/** Replaces non-finite numbers with null, recursively, so a value survives JSON unchanged. */
export function jsonSafe<T>(value: T): T {
  if (typeof value === 'number') return (Number.isFinite(value) ? value : null) as T;
  if (Array.isArray(value)) return value.map(jsonSafe) as T;
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = jsonSafe(v);
    return out as T;
  }
  return value;
}
