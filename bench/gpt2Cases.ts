/**
 * generate-124M and prefill-124M, our side: GPT-2 124M (bench/gpt2Fixture.ts) loaded from its
 * Hugging Face folder and run through the app's own paths, on the same prompt token ids that the
 * llama.cpp peer (bench/llama.ts) gets from the same fixture.
 *
 * - generate-124M: the console's generation (generateTokens, batch 1, KV cache: the wasm decoder on
 *   the wasm backend), greedy, 128 tokens after a 32-token prompt, end-of-text ignored (random
 *   weights may well pick it); tokens/s = 128 / the whole call, prompt included, as on the peer.
 * - prefill-124M: the console's prefill of a 512-token prompt (the same call making one token,
 *   whose prompt goes through the batched forward); the median of 3 after a warm-up. Scoring the
 *   same tokens (every token's log-probability: the score path) is reported beside it.
 */
import { generateTokens } from '../src/engine/generate';
import type { GPT } from '../src/engine/model/gpt';
import { scoreBatch } from '../src/engine/score';
import type { Tokenizer } from '../src/engine/tokenizer/types';
import { ensureGpt2Fixture } from './gpt2Fixture';
import { llamaTask, PREFILL_REPEATS, type LlamaTask } from './llama';
import { fileURLToPath } from 'node:url';

const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));

/** What a case reports (a subset of cases.ts's OurResult). */
export interface Gpt2CaseResult {
  name: string;
  backend: string;
  tokensPerSecond: number;
  samplesMs: number[];
  peakRssMB: number;
  /** generate: the greedy tokens, to compare with the peer's. */
  tokens?: number[];
  notes: string[];
}

const r1 = (x: number) => Math.round(x * 10) / 10;
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/** The tokenizer without an end-of-text id, so that generation always makes every token asked. */
function withoutEos(tokenizer: Tokenizer): Tokenizer {
  return Object.create(tokenizer, { eosId: { value: undefined } }) as Tokenizer;
}

async function greedy(model: GPT, tok: Tokenizer, prompt: number[], n: number): Promise<number[]> {
  const it = generateTokens(model, tok, prompt, {
    maxNewTokens: n,
    temperature: 0,
    useCache: true,
    stop: [],
  });
  const ids: number[] = [];
  for (let r = await it.next(); !r.done; r = await it.next()) ids.push(r.value.id);
  return ids;
}

interface Timed {
  tokensPerSecond: number;
  samplesMs: number[];
  tokens?: number[];
  notes: string[];
}

async function timeGeneration(
  model: GPT,
  tok: Tokenizer,
  prompt: number[],
  task: LlamaTask,
): Promise<Timed> {
  const n = task.newTokens!;
  await greedy(model, tok, prompt, 8); // warm-up
  const t0 = performance.now();
  const tokens = await greedy(model, tok, prompt, n);
  const ms = performance.now() - t0;
  if (tokens.length !== n) throw new Error(`generate-124M: made ${tokens.length} of ${n} tokens`);
  return { tokensPerSecond: n / (ms / 1000), samplesMs: [r1(ms)], tokens, notes: [] };
}

/** Median ms of `fn` over PREFILL_REPEATS runs after one warm-up. */
async function medianMs(fn: () => Promise<unknown>): Promise<{ ms: number; samples: number[] }> {
  const samples: number[] = [];
  for (let i = 0; i <= PREFILL_REPEATS; i++) {
    const t0 = performance.now();
    await fn();
    if (i > 0) samples.push(r1(performance.now() - t0));
  }
  return { ms: median(samples), samples };
}

async function timePrefill(model: GPT, tok: Tokenizer, prompt: number[]): Promise<Timed> {
  const prefill = await medianMs(() => greedy(model, tok, prompt, 1));
  const score = await medianMs(() =>
    scoreBatch(model, [{ context: prompt.slice(0, 1), target: prompt.slice(1) }], 1),
  );
  const n = prompt.length;
  return {
    tokensPerSecond: n / (prefill.ms / 1000),
    samplesMs: prefill.samples,
    notes: [
      `scoring the same ${n} tokens (every token's log-probability, the score path): ` +
        `${Math.round(n / (score.ms / 1000))} tokens/s (median of ${score.samples.join(', ')} ms)`,
    ],
  };
}

/** Runs generate-124M or prefill-124M on the active backend (the bench's child). */
export async function runGpt2Case(
  name: string,
  backend: string,
  log: (s: string) => void,
): Promise<Gpt2CaseResult> {
  const task = llamaTask(name);
  if (!task) throw new Error(`${name} is not a GPT-2 124M case`);
  const { loadModelDir } = await import('../src/engine/checkpoint/modelDir');
  const fixture = await ensureGpt2Fixture(REPO_ROOT, log);
  const t0 = performance.now();
  const { model, tokenizer } = await loadModelDir(fixture.hfDir);
  const loadSeconds = (performance.now() - t0) / 1000;
  const prompt = fixture.promptIds.slice(0, task.promptTokens);
  try {
    const tok = withoutEos(tokenizer);
    const r: Timed =
      task.task === 'generate'
        ? await timeGeneration(model, tok, prompt, task)
        : await timePrefill(model, tok, prompt);
    const path = backend === 'wasm' ? 'the wasm decoder' : 'tf ops (the wasm decoder needs wasm)';
    return {
      name,
      backend,
      tokensPerSecond: r1(r.tokensPerSecond),
      samplesMs: r.samplesMs,
      peakRssMB: Math.round(process.resourceUsage().maxRSS / 1024),
      ...(r.tokens ? { tokens: r.tokens } : {}),
      notes: [
        `GPT-2 124M, random weights (f16-exact), load ${r1(loadSeconds)} s; prompt ` +
          `${prompt.length} tokens${task.newTokens ? `, ${task.newTokens} new, greedy` : ''}; ` +
          `${path}, 1 thread`,
        ...r.notes,
      ],
    };
  } finally {
    model.dispose();
  }
}
