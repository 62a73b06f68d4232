/**
 * Fine-tuning advice every side shares: the default learning rate and epochs by model size (the
 * CLI, the engine host and the wizard take them from `finetuneDefaults`), and what a finished
 * fine-tune's validation curve says (`diagnoseFinetune`, shown by the results page and the CLI).
 * The rule and its calibration on the bundled sentiment set are in docs/finetune.md.
 */
import type { FinetuneResult } from './finetune';

/** GPT-1's fine-tuning rate (§4.1), for its 117M-parameter model. */
export const GPT1_LR = 6.25e-5;
/** The rate measured best for the bundled 1.33M-parameter model (docs/finetune.md). */
export const SMALL_MODEL_LR = 1e-3;
/** At or below this size the small-model rate applies… */
export const SMALL_MODEL_PARAMS = 2e6;
/** …at or above this one GPT-1's recipe; between them the rate is log-interpolated. */
export const GPT1_MODEL_PARAMS = 1e8;
export const DEFAULT_EPOCHS = 3;

export type SizeRule = 'small' | 'between' | 'gpt1';

export interface FinetuneDefaults {
  lr: number;
  epochs: number;
  /** Which part of the rule picked them. */
  rule: SizeRule;
  params: number;
}

/** Two significant digits, so a rate reads like one a person would type (9.4e-4). */
function twoDigits(x: number): number {
  return Number(x.toPrecision(2));
}

/**
 * The default learning rate and epochs for a model of `params` parameters: SMALL_MODEL_LR up to
 * SMALL_MODEL_PARAMS, GPT-1's 6.25e-5 from GPT1_MODEL_PARAMS, and between them a straight line in
 * log(lr) against log(params), rounded to two significant digits.
 */
export function finetuneDefaults(params: number): FinetuneDefaults {
  const base = { epochs: DEFAULT_EPOCHS, params };
  if (!(params > SMALL_MODEL_PARAMS)) return { ...base, lr: SMALL_MODEL_LR, rule: 'small' };
  if (params >= GPT1_MODEL_PARAMS) return { ...base, lr: GPT1_LR, rule: 'gpt1' };
  const t =
    Math.log(params / SMALL_MODEL_PARAMS) / Math.log(GPT1_MODEL_PARAMS / SMALL_MODEL_PARAMS);
  const lr = Math.exp((1 - t) * Math.log(SMALL_MODEL_LR) + t * Math.log(GPT1_LR));
  return { ...base, lr: twoDigits(lr), rule: 'between' };
}

/** A parameter count as people read it: 1.33M, 124M, 850K. */
export function formatParams(n: number): string {
  if (n >= 1e9) return `${twoOrThree(n / 1e9)}B`;
  if (n >= 1e6) return `${twoOrThree(n / 1e6)}M`;
  if (n >= 1e3) return `${twoOrThree(n / 1e3)}K`;
  return String(n);
}

function twoOrThree(x: number): string {
  return x >= 100 ? x.toFixed(0) : Number(x.toPrecision(3)).toString();
}

/** A learning rate as one would type it: 1e-3, 9.4e-4, 6.25e-5. */
export function formatLr(lr: number): string {
  return lr
    .toExponential()
    .replace(/\.?0+e/, 'e')
    .replace('e+', 'e');
}

/** The rule's learning rate in one English sentence (the CLI and the engine's log say it). */
export function describeDefaults(d: FinetuneDefaults): string {
  const size = `${formatParams(d.params)} parameters`;
  const gpt1 = `GPT-1's ${formatLr(GPT1_LR)} is for models of about ${formatParams(GPT1_MODEL_PARAMS)} parameters and up`;
  switch (d.rule) {
    case 'small':
      return `small model (${size}): lr ${formatLr(d.lr)}; ${gpt1}`;
    case 'between':
      return (
        `${size}: lr ${formatLr(d.lr)}, log-interpolated between ` +
        `${formatLr(SMALL_MODEL_LR)} at ${formatParams(SMALL_MODEL_PARAMS)} and GPT-1's ` +
        `${formatLr(GPT1_LR)} at ${formatParams(GPT1_MODEL_PARAMS)}`
      );
    case 'gpt1':
      return `${size}: GPT-1's recipe, lr ${formatLr(d.lr)}`;
  }
}

// ─── What a finished fine-tune's curve says ──────────────────────────────────────────────────────

/** "Within about a point" of the majority rate. */
export const MAJORITY_MARGIN = 0.01;

/** The share of the commonest true label in a confusion matrix (rows: true labels). */
export function majorityRate(confusion: readonly (readonly number[])[]): number {
  const rows = confusion.map((r) => r.reduce((a, b) => a + b, 0));
  const n = rows.reduce((a, b) => a + b, 0);
  return n > 0 ? Math.max(...rows) / n : 0;
}

export type FinetuneFinding = 'falling' | 'majority';

export type FinetuneSuggestion =
  | { kind: 'raise-lr'; lr: number }
  | { kind: 'lower-lr'; lr: number }
  | { kind: 'more-epochs'; epochs: number }
  | { kind: 'fewer-epochs' }
  | { kind: 'more-data' };

export interface FinetuneDiagnosis {
  finding: FinetuneFinding;
  /** Validation accuracy per epoch, first to last. */
  valAccuracy: number[];
  majority: number;
  /** What to change, the likeliest help first. */
  suggestions: FinetuneSuggestion[];
}

export interface DiagnoseInput {
  /** Validation accuracy after each epoch, in order. */
  valAccuracy: readonly number[];
  /** The share of the commonest label in the validation set. */
  majority: number;
  /** The settings the fine-tune ran with. */
  lr: number;
  epochs: number;
  /** The pretrained model's size, for the size rule's rate (no rate advice without it). */
  params?: number;
}

function isFalling(acc: readonly number[]): boolean {
  return acc.length >= 3 && acc.every((a, i) => i === 0 || a < acc[i - 1]!);
}

function isAtMajority(acc: readonly number[], majority: number): boolean {
  return acc.length >= 1 && Math.max(...acc) <= majority + MAJORITY_MARGIN;
}

/**
 * A note on a finished fine-tune: 'majority' when no epoch beat always answering the commonest
 * label by more than MAJORITY_MARGIN, 'falling' when validation accuracy fell after every epoch
 * (three epochs or more); null when neither. The suggestions compare the rate used with the size
 * rule's.
 */
export function diagnoseFinetune(o: DiagnoseInput): FinetuneDiagnosis | null {
  const acc = [...o.valAccuracy];
  const finding: FinetuneFinding | null = isAtMajority(acc, o.majority)
    ? 'majority'
    : isFalling(acc)
      ? 'falling'
      : null;
  if (!finding) return null;
  const ruleLr = o.params !== undefined ? finetuneDefaults(o.params).lr : undefined;
  const suggestions: FinetuneSuggestion[] = [];
  const lrLow = ruleLr !== undefined && o.lr < ruleLr / 2;
  const lrHigh = ruleLr !== undefined && o.lr > ruleLr * 2;
  if (lrLow) suggestions.push({ kind: 'raise-lr', lr: ruleLr });
  if (finding === 'majority') {
    if (lrHigh) suggestions.push({ kind: 'lower-lr', lr: ruleLr });
    suggestions.push({ kind: 'more-epochs', epochs: o.epochs * 2 });
  } else {
    if (lrHigh) suggestions.push({ kind: 'lower-lr', lr: ruleLr });
    if (!lrLow) suggestions.push({ kind: 'fewer-epochs' });
  }
  suggestions.push({ kind: 'more-data' });
  return { finding, valAccuracy: acc, majority: o.majority, suggestions };
}

const pct = (x: number) => `${(x * 100).toFixed(0)}%`;

/** The diagnosis in English lines (the CLI prints them). */
export function describeDiagnosis(d: FinetuneDiagnosis): string[] {
  const curve = d.valAccuracy.map(pct).join(' → ');
  const head =
    d.finding === 'falling'
      ? `validation accuracy fell after every epoch (${curve})`
      : `validation accuracy stayed at the majority rate: ${curve}, while always answering the commonest label scores ${pct(d.majority)}`;
  return [head, ...d.suggestions.map((s) => `  try: ${describeSuggestion(s)}`)];
}

function describeSuggestion(s: FinetuneSuggestion): string {
  switch (s.kind) {
    case 'raise-lr':
      return `a higher learning rate, ${formatLr(s.lr)} (the rate for this model's size)`;
    case 'lower-lr':
      return `a lower learning rate, ${formatLr(s.lr)} (the rate for this model's size)`;
    case 'more-epochs':
      return `more epochs (${s.epochs})`;
    case 'fewer-epochs':
      return 'fewer epochs: the first epoch was the best, the model is overfitting';
    case 'more-data':
      return 'more labeled examples';
  }
}

/**
 * The diagnosis of a finished fine-tune (null without a validation curve): its validation
 * accuracy per epoch against the majority rate of the set it was evaluated on.
 */
export function diagnoseResult(
  r: Pick<FinetuneResult, 'history' | 'evaluatedOn' | 'metrics'>,
  run: { lr: number; epochs: number; params?: number },
): FinetuneDiagnosis | null {
  if (r.evaluatedOn !== 'val' || r.history.length === 0) return null;
  return diagnoseFinetune({
    valAccuracy: r.history.map((h) => h.valAccuracy),
    majority: majorityRate(r.metrics.confusion),
    ...run,
  });
}
