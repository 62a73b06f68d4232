/**
 * GPT vs BERT on the same engine: a left-to-right decoder (GPT: causal attention, next-token
 * prediction) and a bidirectional masked-LM encoder (BERT: every position sees both sides, 15% of
 * the tokens masked and predicted) of the same size, pretrained on the same corpus with the same
 * tokenizer, settings and steps, then fine-tuned alike on the same labeled data. GPT's classifier
 * reads the extract token's state, BERT's the first position's ([s], as BERT reads [CLS]).
 */
import { promises as fs } from 'node:fs';
import os from 'node:os';
import * as path from 'node:path';
import {
  GPT1_FINETUNE,
  type FinetuneSettings,
  type GptBertModel,
  type GptBertResult,
} from '../../common/finetune';
import { readHfConfig } from '../checkpoint/gpt2';
import type { Objective } from '../model/config';
import { pretrain } from '../train/pretrain';
import { readState } from '../train/runDir';
import { exists } from '../util/fs';
import { finetune, type FinetuneEvent, type FinetuneOptions } from './finetune';
import { readFinetuneData } from './load';

export type GptBertEvent =
  | FinetuneEvent
  | {
      type: 'gptbert.phase';
      model: GptBertModel;
      phase: 'pretrain' | 'finetune';
      index: number;
      count: number;
    }
  | {
      type: 'gptbert.step';
      model: GptBertModel;
      step: number;
      totalSteps: number;
      trainLoss: number;
      etaMs: number;
    };

export interface GptBertOptions extends Omit<FinetuneOptions, 'out' | 'onEvent'> {
  /** Pretraining steps of each (default: the run's own). */
  pretrainSteps?: number;
  /** Keeps the two pretrained models here (gpt/ and bert/); by default they are deleted. */
  keep?: string;
  onEvent?: (e: GptBertEvent) => void;
}

/** What both models are pretrained with: `model`'s run's corpus, tokenizer, size and settings. */
export async function pretrainPlanOf(runDir: string, steps?: number) {
  const dir = path.resolve(runDir);
  if (!(await exists(path.join(dir, 'state.json')))) {
    throw new Error(
      `${dir}: no pretraining record (state.json with its corpus and settings); GPT vs BERT ` +
        'pretrains both models as a run of this app was pretrained: pick such a run',
    );
  }
  const state = await readState(dir);
  const corpus = state.corpus.map((c) => c.path);
  for (const file of corpus) {
    if (!(await exists(file))) {
      throw new Error(`${path.join(dir, 'state.json')}: the run's corpus ${file} is missing`);
    }
  }
  const config = await readHfConfig(path.join(dir, 'config.json'));
  const { nLayer, nHead, nEmbd, blockSize, dropout, layout } = config;
  return {
    dir,
    corpus,
    size: { nLayer, nHead, nEmbd, blockSize, dropout, ...(layout ? { layout } : {}) },
    // no samples (BERT cannot generate) and one checkpoint, at the end
    train: { ...state.train, steps: steps ?? state.train.steps, sampleEvery: 0, saveEvery: 0 },
  };
}

const SIDES: ReadonlyArray<{ model: GptBertModel; objective: Objective; folder: string }> = [
  { model: 'GPT', objective: 'clm', folder: 'gpt' },
  { model: 'BERT', objective: 'mlm', folder: 'bert' },
];

function stopped(): Error {
  return Object.assign(new Error('the GPT vs BERT comparison was stopped'), { name: 'AbortError' });
}

/** Pretrains a GPT and a BERT as `opts.model`'s run was, fine-tunes both, and compares them. */
export async function gptBert(opts: GptBertOptions): Promise<GptBertResult> {
  const started = Date.now();
  const emit = (e: GptBertEvent) => opts.onEvent?.(e);
  const plan = await pretrainPlanOf(opts.model, opts.pretrainSteps);
  const given: Partial<FinetuneSettings> = { ...opts.settings, init: 'pretrained' };
  const prepared =
    opts.prepared ??
    (await readFinetuneData({
      ...opts,
      valFraction: given.valFraction ?? GPT1_FINETUNE.valFraction,
      seed: given.seed ?? GPT1_FINETUNE.seed,
    }));
  const root = opts.keep
    ? path.resolve(opts.keep)
    : await fs.mkdtemp(path.join(os.tmpdir(), 'gpt-bert-'));
  const rows: GptBertResult['rows'] = [];
  try {
    for (const [index, side] of SIDES.entries()) {
      opts.signal?.throwIfAborted();
      const runDir = path.join(root, side.folder);
      emit({ type: 'gptbert.phase', model: side.model, phase: 'pretrain', index, count: 2 });
      const t0 = Date.now();
      let params = 0;
      const pre = await pretrain({
        corpus: plan.corpus,
        out: runDir,
        tokenizer: { dir: plan.dir },
        model: plan.size,
        train: { ...plan.train, ...(opts.workers !== undefined ? { workers: opts.workers } : {}) },
        objective: side.objective,
        ...(opts.signal ? { signal: opts.signal } : {}),
        onEvent: (e) => {
          if (e.type === 'start') params = e.params;
          if (e.type === 'step') {
            const { step, totalSteps, trainLoss, etaMs } = e;
            emit({ type: 'gptbert.step', model: side.model, step, totalSteps, trainLoss, etaMs });
          }
        },
      });
      if (pre.stopped === 'cancelled') throw stopped();
      const pretrainMs = Date.now() - t0;
      emit({ type: 'gptbert.phase', model: side.model, phase: 'finetune', index, count: 2 });
      const r = await finetune({
        ...opts,
        model: runDir,
        out: undefined,
        settings: given,
        variant: side.model,
        prepared,
        onEvent: emit,
      });
      if (r.outcome === 'cancelled') throw stopped();
      rows.push({
        model: side.model,
        objective: side.objective,
        params,
        pretrainLoss: pre.valLoss ?? pre.trainLoss,
        pretrainMs,
        accuracy: r.metrics.accuracy,
        macroF1: r.metrics.macroF1,
        ...(r.metrics.f1 !== undefined ? { f1: r.metrics.f1 } : {}),
        finetuneMs: r.elapsedMs,
        history: r.history,
      });
    }
  } finally {
    if (!opts.keep) await fs.rm(root, { recursive: true, force: true });
  }
  return {
    type: 'gptbert.result',
    task: opts.task,
    elapsedMs: Date.now() - started,
    pretrain: { corpus: plan.corpus, steps: plan.train.steps, ...plan.size },
    rows,
  };
}
