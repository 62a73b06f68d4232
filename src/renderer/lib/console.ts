/**
 * The console page's pure helpers: sampling defaults, probability colours, and a generation
 * stream over the contract (console.generate → generate.token events → job.done/failed, with
 * stop).
 */
import type { GenerationOutput, Params } from '../../common/api';
import type { ApiClient } from '../../common/client';
import type { Demo, HistoryToken, SamplingPreset } from '../../common/console';

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

/** A preset over the defaults (a preset names only what it changes). */
export function applyPreset(base: Sampling, preset: SamplingPreset['sampling']): Sampling {
  return { ...base, ...preset, stop: [...(preset.stop ?? base.stop)] };
}

export interface FewShotConfig {
  instruction: string;
  format: string;
  separator: string;
  demos: Demo[];
}

export const DEFAULT_FEWSHOT: FewShotConfig = {
  instruction: '',
  format: '{input} => {output}',
  separator: '\n',
  demos: [],
};

/** The template fields, passed as values so the catalogs need no ICU escaping of braces. */
export const SLOTS = { input: '{input}', output: '{output}' };

export const DEFAULT_ZERO_SHOT = 'Translate English to French: {input} =>';

/** The bundled labeled sample (a path under app.info's resources). */
export const SAMPLE_DATA = 'samples/sentiment-imdb.jsonl';

/** Alternatives shown when hovering a token. */
export const TOP_ALTERNATIVES = 10;

export const prob = (logprob: number | null) => (logprob === null ? 0 : Math.exp(logprob));

export function formatProb(logprob: number | null): string {
  const p = prob(logprob);
  if (p >= 0.995) return '100%';
  if (p >= 0.1) return `${(p * 100).toFixed(0)}%`;
  if (p >= 0.001) return `${(p * 100).toFixed(1)}%`;
  return p > 0 ? `${(p * 100).toExponential(0)}%` : '0%';
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

/** Copies text to the clipboard; falls back to a hidden textarea where the API is refused. */
export async function copyText(text: string): Promise<void> {
  try {
    await navigator.clipboard.writeText(text);
    return;
  } catch {
    const ta = document.createElement('textarea');
    ta.value = text;
    ta.style.position = 'fixed';
    ta.style.opacity = '0';
    document.body.appendChild(ta);
    ta.select();
    document.execCommand('copy');
    ta.remove();
  }
}
