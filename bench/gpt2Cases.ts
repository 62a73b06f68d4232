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
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Check } from './cases';
import { exists } from '../src/engine/util/fs';
import { gpt2Config, writeRandomGpt2 } from './randomGpt2';

const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));

/** What a case reports (a subset of cases.ts's OurResult). */
export interface Gpt2CaseResult {
  name: string;
  backend: string;
  tokensPerSecond: number;
  samplesMs: number[];
  peakRssMB: number;
  /** generate: the greedy tokens (f16), to compare with the peer's. */
  tokens?: number[];
  /** tokens/s with the weights held as f16, q8 and f32. */
  byWeights: Record<string, number>;
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

/**
 * The weight formats a case loads, headline first: q8 (llama.cpp's q8_0 layout, the app's fastest
 * on wasm); f16, which holds the same numbers as the peer's GGUF f16 (the fixture's weights are
 * f16-exact), and f32 are reported beside it, each with its own ratio in the notes.
 */
export const GPT2_CASE_WEIGHTS = ['q8', 'f16', 'f32'] as const;

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
  const prompt = fixture.promptIds.slice(0, task.promptTokens);
  const byWeights: Record<string, number> = {};
  const notes: string[] = [];
  let headline: Timed | null = null;
  for (const weights of GPT2_CASE_WEIGHTS) {
    log(`${name}: ${weights} weights…`);
    const t0 = performance.now();
    const { model, tokenizer } = await loadModelDir(fixture.hfDir, { weights });
    const loadSeconds = (performance.now() - t0) / 1000;
    try {
      const tok = withoutEos(tokenizer);
      const r: Timed =
        task.task === 'generate'
          ? await timeGeneration(model, tok, prompt, task)
          : await timePrefill(model, tok, prompt);
      headline ??= r;
      byWeights[weights] = r1(r.tokensPerSecond);
      const path =
        weights !== 'f32' || backend === 'wasm'
          ? `the wasm decoder${weights === 'f32' ? ' (XNNPACK)' : `'s ${weights} kernels`}`
          : 'tf ops (the f32 decoder needs wasm)';
      notes.push(
        `${weights}: ${r1(r.tokensPerSecond)} tok/s (${path}, 1 thread; load ${r1(loadSeconds)} s)` +
          (r.notes.length ? `; ${r.notes.join('; ')}` : ''),
      );
    } finally {
      model.dispose();
    }
  }
  return {
    name,
    backend,
    tokensPerSecond: byWeights[GPT2_CASE_WEIGHTS[0]]!,
    samplesMs: headline!.samplesMs,
    peakRssMB: Math.round(process.resourceUsage().maxRSS / 1024),
    ...(headline!.tokens ? { tokens: headline!.tokens } : {}),
    byWeights,
    notes: [
      `GPT-2 124M, random weights (f16-exact); prompt ${prompt.length} tokens` +
        `${task.newTokens ? `, ${task.newTokens} new, greedy` : ''}; the headline is q8 (the ` +
        `peer runs the GGUF f16 of the same weights)`,
      ...notes,
    ],
  };
}

/** gpt2-xl's target: greedy tokens per second with q8 weights on this machine. */
export const GPT2_XL_TOKENS_PER_SECOND = 2;

/**
 * gpt2-xl: the Hub-layout folder (bench/randomGpt2.ts, written once into .cache/bench), imported
 * by the app's importer (every tensor checked, the engine's folder written), loaded with q8
 * weights (the numerics against f32 measured at load, as the console does), then 32 greedy tokens
 * after a 16-token prompt, timed whole, prompt included.
 */
export async function runGpt2Xl(
  name: string,
  backend: string,
  log: (s: string) => void,
): Promise<Gpt2CaseResult & { checks: Check[]; seconds: number }> {
  const { importModel } = await import('../src/engine/checkpoint/import');
  const { loadModelDir } = await import('../src/engine/checkpoint/modelDir');
  const dir = path.join(REPO_ROOT, '.cache', 'bench', 'gpt2-xl-random-v1');
  const hub = path.join(dir, 'hub');
  const model = path.join(dir, 'model');
  const done = path.join(hub, '.complete');
  if (!(await exists(done))) {
    log(`${name}: writing the 6.4 GB Hub folder once (${hub})…`);
    await fs.rm(hub, { recursive: true, force: true });
    await writeRandomGpt2(hub, gpt2Config('gpt2-xl'));
    await fs.writeFile(done, '');
  }
  log(`${name}: importing…`);
  await fs.rm(model, { recursive: true, force: true });
  let t0 = performance.now();
  const imported = await importModel({ from: hub, out: model });
  const importSeconds = (performance.now() - t0) / 1000;
  log(`${name}: loading with q8 weights…`);
  t0 = performance.now();
  const loaded = await loadModelDir(model, { weights: 'q8' });
  const loadSeconds = (performance.now() - t0) / 1000;
  const n = 32;
  try {
    const tok = withoutEos(loaded.tokenizer);
    const prompt = tok
      .encode('The history of the transformer architecture begins with')
      .slice(0, 16);
    t0 = performance.now();
    const tokens = await greedy(loaded.model, tok, prompt, n);
    const ms = performance.now() - t0;
    const tps = n / (ms / 1000);
    const peakRssMB = Math.round(process.resourceUsage().maxRSS / 1024);
    const numerics = loaded.weights.numerics;
    return {
      name,
      backend,
      tokensPerSecond: r1(tps),
      samplesMs: [r1(ms)],
      peakRssMB,
      tokens,
      byWeights: { q8: r1(tps) },
      seconds: r1(importSeconds + loadSeconds + ms / 1000),
      checks: [
        {
          what: 'tokensPerSecond',
          op: '>=',
          target: GPT2_XL_TOKENS_PER_SECOND,
          value: r1(tps),
          ok: tps >= GPT2_XL_TOKENS_PER_SECOND,
        },
      ],
      notes: [
        `gpt2-xl, ${imported.params.toLocaleString('en-US')} parameters (random weights): import ` +
          `${r1(importSeconds)} s, load with q8 weights ${r1(loadSeconds)} s ` +
          `(${(loaded.weights.bytes / 2 ** 30).toFixed(2)} GiB held)` +
          (numerics
            ? `, vs f32 on the reference text: mean |Δlogp| ${numerics.meanAbsDiff.toFixed(4)}, ` +
              `max ${numerics.maxAbsDiff.toFixed(4)}`
            : ''),
        `${n} greedy tokens after ${prompt.length}: ${r1(tps)} tok/s (the wasm decoder's q8 ` +
          `kernels, 1 thread); peak RSS ${peakRssMB} MB`,
      ],
    };
  } finally {
    loaded.model.dispose();
    await fs.rm(model, { recursive: true, force: true });
  }
}
