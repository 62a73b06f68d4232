/**
 * The one event vocabulary: a training step's event is the same object whether the CLI prints it
 * with --json, the engine host sends it over IPC, or the browser-mode server pushes it.
 */
import type { ZeroShotPoint } from './zeroShot';

export interface TrainStartEvent {
  type: 'start';
  runDir: string;
  step: number;
  totalSteps: number;
  params: number;
  backend: string;
  tokensPerStep: number;
  trainTokens: number;
  valTokens: number;
  resumed: boolean;
}

export interface TrainStepEvent {
  type: 'step';
  step: number;
  totalSteps: number;
  trainLoss: number;
  lr: number;
  gradNorm: number;
  tokensPerSecond: number;
  elapsedMs: number;
  etaMs: number;
  memoryMB: number;
}

export interface TrainEvalEvent {
  type: 'eval';
  step: number;
  trainLoss: number;
  valLoss: number;
  valPerplexity: number;
}

/** A tracked set's zero-shot accuracy at a step (common/zeroShot.ts). */
export interface TrainZeroShotEvent extends ZeroShotPoint {
  type: 'zeroshot';
}

export interface TrainSampleEvent {
  type: 'sample';
  step: number;
  prompt: string;
  text: string;
}

export interface CheckpointEvent {
  type: 'checkpoint';
  step: number;
  path: string;
}

export interface LogEvent {
  type: 'log';
  level: 'info' | 'warn' | 'error';
  message: string;
}

export interface TokenizerProgressEvent {
  type: 'tokenizer';
  phase: string;
  fraction: number;
  message: string;
}

export type TrainEvent =
  | TrainStartEvent
  | TrainStepEvent
  | TrainEvalEvent
  | TrainZeroShotEvent
  | TrainSampleEvent
  | CheckpointEvent
  | LogEvent
  | TokenizerProgressEvent;

/** The last line of `pretrain --json` and `resume --json`. */
export interface TrainResult {
  type: 'result';
  runDir: string;
  step: number;
  trainLoss: number;
  valLoss: number | null;
  tokensPerSecond: number;
  stopped: 'completed' | 'cancelled';
  elapsedMs: number;
}

export type EventSink = (event: TrainEvent) => void;

export function isFiniteNumber(x: unknown): x is number {
  return typeof x === 'number' && Number.isFinite(x);
}
