/**
 * Jobs as every side sees them: the kinds (each feature names its own), which of them keep
 * checkpoints, and what the parent of the engine host (the server, Electron's main) says when the
 * host dies under them. Pure: no Node APIs.
 */
import { z } from 'zod';
import { CHECKPOINT_JOB_KINDS } from './checkpoints';
import { CONSOLE_JOB_KINDS } from './console';
import { DATASET_JOB_KINDS } from './datasets';
import { FINETUNE_JOB_KINDS } from './finetune';
import { HUB_JOB_KINDS } from './hub';
import { PRETRAIN_JOB_KINDS } from './pretrain';

export const jobKindSchema = z.enum([
  ...PRETRAIN_JOB_KINDS,
  ...CONSOLE_JOB_KINDS,
  ...DATASET_JOB_KINDS,
  ...FINETUNE_JOB_KINDS,
  ...CHECKPOINT_JOB_KINDS,
  ...HUB_JOB_KINDS,
]);
export type JobKind = z.infer<typeof jobKindSchema>;

/** Jobs that write a run or fine-tune with checkpoints: a crash leaves their last one. */
export const CHECKPOINTED_JOB_KINDS: readonly JobKind[] = [
  'pretrain',
  'resume',
  'finetune',
  'ablation',
];

/** The engine host's exit code after a backend abort: "restart me with a fresh backend". */
export const BACKEND_ABORT_EXIT_CODE = 70;

/** What the parent (the server, Electron's main) says when the engine host exits unasked. */
export function hostStoppedMessage(code: number | null, signal: string | null, restart: number) {
  if (code === BACKEND_ABORT_EXIT_CODE) {
    return `the engine host is restarting with a fresh compute backend after it crashed (restart ${restart})`;
  }
  const how = signal ? `signal ${signal}` : `exit code ${code}`;
  return `the engine host stopped (${how}); restarting it (restart ${restart})`;
}

/** What a job is told when the engine host dies under it. */
export function crashMessage(kind: JobKind): string {
  return CHECKPOINTED_JOB_KINDS.includes(kind)
    ? 'the engine host crashed; the run keeps its last checkpoint and can be resumed'
    : `the engine host crashed while this ${kind} job ran; nothing was saved by it, try again`;
}
