/**
 * The console page's pure helpers: sampling defaults and presets, the prompt fields' escapes,
 * the few-shot answer's size and the budget's offer, probability colours, and a generation
 * stream over the contract (console.generate → generate.token events → job.done/failed, with
 * stop).
 */
import type { GenerationOutput, Params } from '../../common/api';
import type { ApiClient } from '../../common/client';
import type {
  AssembledPrompt,
  Demo,
  HistoryToken,
  PromptMode,
  SamplingPreset,
} from '../../common/console';
import { escapeField, unescapeField } from '../../common/escapes';
import { formatProbability } from '../../common/format';

export { escapeField, unescapeField };

export type Sampling = Required<
  Pick<
    SamplingPreset['sampling'],
    'maxNewTokens' | 'temperature' | 'topK' | 'topP' | 'repetitionPenalty' | 'stop' | 'seed'
  >
>;

export const DEFAULT_SAMPLING: Sampling = {
  maxNewTokens: 120,
  temperature: 0.8,
  topK: 0,
  topP: 1,
  repetitionPenalty: 1,
  stop: [],
  seed: 1337,
};

/** A preset over the current settings: it changes only what it names (the stops stay unless named). */
export function applyPreset(base: Sampling, preset: SamplingPreset['sampling']): Sampling {
  return { ...base, ...preset, stop: [...(preset.stop ?? base.stop)] };
}

/** The settings saved as a preset; an empty stop list is not named, so applying it keeps the stops. */
export function presetOf(sampling: Sampling): SamplingPreset['sampling'] {
  const { stop, ...rest } = sampling;
  return stop.length ? { ...rest, stop: [...stop] } : rest;
}

/** The stop-sequences field: "\n\n, END" → ["\n\n", "END"] (the field escapes understood). */
export function parseStops(text: string): string[] {
  return text
    .split(',')
    .map((s) => unescapeField(s.trim()))
    .filter((s) => s !== '')
    .slice(0, 16);
}

/** Stop sequences as the one-line field shows them (the inverse of parseStops). */
export function stopsText(stops: string[]): string {
  return stops.map(escapeField).join(', ');
}

export interface FewShotConfig {
  /** As typed: the escapes of unescapeField are applied when the prompt is assembled. */
  instruction: string;
  format: string;
  separator: string;
  demos: Demo[];
  /** The candidate answers, when the demonstrations came from a labeled table (else empty). */
  labels: string[];
}

export const DEFAULT_FEWSHOT: FewShotConfig = {
  instruction: '',
  format: '{input} => {output}',
  separator: '\n',
  demos: [],
  labels: [],
};

/** Tokens kept beyond the longest label: the token after it (a separator) and tokenizing slack. */
export const ANSWER_MARGIN = 3;

/**
 * The answer as the model writes it after a few-shot query: the format's spaces before
 * `{output}` (the query ends before them), then the label, as the engine's splitQuery splits it.
 */
export function answerText(format: string, label: string): string {
  const at = format.indexOf('{output}');
  const head = at >= 0 ? format.slice(0, at) : format;
  return `${/[ \t]*$/.exec(head)![0]}${label}`;
}

/** Max new tokens for a classification-like few-shot task: the longest label plus a margin. */
export function labelAnswerTokens(labelTokens: number[], margin = ANSWER_MARGIN): number | null {
  if (labelTokens.length === 0) return null;
  return Math.max(1, ...labelTokens) + margin;
}

/** The task's default max new tokens: a label's length for few-shot classification, else 120. */
export function taskMaxNewTokens(mode: PromptMode, labelTokens: number | null): number {
  return mode === 'few-shot' && labelTokens !== null ? labelTokens : DEFAULT_SAMPLING.maxNewTokens;
}

/**
 * The largest max new tokens that keeps more demonstrations than now, from `probe` (the same
 * prompt assembled with one new token): null when lowering it would keep none more.
 */
export function fittingMaxNewTokens(
  current: Pick<AssembledPrompt, 'demosUsed' | 'dropped'>,
  currentMaxNewTokens: number,
  probe: Pick<AssembledPrompt, 'context' | 'tokens' | 'demosUsed'>,
): number | null {
  if (current.dropped === 0 || probe.demosUsed <= current.demosUsed) return null;
  const n = probe.context - probe.tokens;
  return n >= 1 && n < currentMaxNewTokens ? n : null;
}

/** The template fields, passed as values so the catalogs need no ICU escaping of braces. */
export const SLOTS = { input: '{input}', output: '{output}' };

export const DEFAULT_ZERO_SHOT = 'Translate English to French: {input} =>';

/** The bundled labeled sample (a path under app.info's resources). */
export const SAMPLE_DATA = 'samples/sentiment-imdb.jsonl';

/** Alternatives shown when hovering a token. */
export const TOP_ALTERNATIVES = 10;

export const prob = (logprob: number | null) => (logprob === null ? 0 : Math.exp(logprob));

export function formatProb(logprob: number | null): string {
  return formatProbability(prob(logprob));
}

/** A token's background: red (unlikely) through amber to green (likely), translucent for both themes. */
export function probColor(logprob: number | null): string {
  const p = prob(logprob);
  const hue = Math.round(120 * Math.sqrt(p));
  return `hsl(${hue} 75% 50% / 0.28)`;
}

/** A token's text as shown alone (whitespace made visible). */
export function showPiece(text: string): string {
  if (text === '') return '∅';
  return text.replace(/\n/g, '↵').replace(/\t/g, '⇥').replace(/^ | $/g, '␣');
}

export function newId(): string {
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
}

export interface Stream {
  jobId: Promise<string>;
  /** Resolves with the result, or rejects with the job's error. */
  done: Promise<GenerationOutput>;
  stop(): void;
}

/**
 * Starts generation and calls `onToken` for each streamed token. Events that arrive before the
 * job id is known are held (followJob), so none is lost.
 */
export function streamGenerate(
  api: ApiClient,
  params: Params<'console.generate'>,
  onToken: (t: HistoryToken) => void,
): Stream {
  let id: string | null = null;
  let stopRequested = false;
  let resolveDone!: (r: GenerationOutput) => void;
  let rejectDone!: (e: Error) => void;
  const done = new Promise<GenerationOutput>((res, rej) => {
    resolveDone = res;
    rejectDone = rej;
  });
  const started = api.invoke('console.generate', params);
  api.followJob(started, {
    token: (e) =>
      onToken({
        id: e.id,
        text: e.text,
        logprob: e.logprob,
        ...(e.alternatives
          ? { alternatives: e.alternatives.map((a) => ({ ...a, text: '' })) }
          : {}),
      }),
    done: (result) => resolveDone(result as GenerationOutput),
    failed: (error) => rejectDone(new Error(error.message)),
  });
  const jobId = started.then(
    (r) => {
      id = r.jobId;
      if (stopRequested) void api.invoke('jobs.cancel', { jobId: r.jobId }).catch(() => {});
      return r.jobId;
    },
    (err: unknown) => {
      rejectDone(err as Error);
      throw err;
    },
  );
  jobId.catch(() => {});
  return {
    jobId,
    done,
    stop() {
      stopRequested = true;
      if (id) void api.invoke('jobs.cancel', { jobId: id }).catch(() => {});
    },
  };
}
