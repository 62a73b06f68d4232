/**
 * The llama.cpp peer's own process (`node --import tsx bench/llamaChild.ts CASE`, spawned by
 * bench/llama.ts): node-llama-cpp, loaded by absolute path from where
 * scripts/install-bench-peers.sh put it, runs the case's task on the fixture's GGUF f16 with the
 * fixture's prompt ids, with 1 thread and then llama.cpp's default (the physical cores), and
 * prints one result line.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gpt2Fixture } from './gpt2Fixture';
import {
  CHILD_MARK,
  llamaPeerDir,
  llamaTask,
  loadNodeLlamaCpp,
  PREFILL_REPEATS,
  type LlamaContext as Context,
  type LlamaPeerResult,
  type LlamaRun,
  type LlamaSequence as Sequence,
  type LlamaTask,
} from './llama';

const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));

const r1 = (x: number) => Math.round(x * 10) / 10;
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/** Greedy generation of `n` tokens after `prompt` (end-of-text does not stop it). */
async function generate(seq: Sequence, prompt: number[], n: number): Promise<number[]> {
  await seq.clearHistory();
  const out: number[] = [];
  for await (const token of seq.evaluate(prompt, { temperature: 0 })) {
    out.push(token);
    if (out.length >= n) break;
  }
  return out;
}

/** One warm-up, then the timed run(s), as our side does (bench/gpt2Cases.ts). */
async function measure(ctx: Context, task: LlamaTask, prompt: number[]): Promise<LlamaRun> {
  const seq = ctx.getSequence();
  const threads = ctx.currentThreads;
  if (task.task === 'generate') {
    const n = task.newTokens!;
    await generate(seq, prompt, 8);
    const t0 = performance.now();
    const tokens = await generate(seq, prompt, n);
    const ms = performance.now() - t0;
    return { threads, tokensPerSecond: r1(n / (ms / 1000)), samplesMs: [r1(ms)], tokens };
  }
  const samplesMs: number[] = [];
  for (let i = 0; i <= PREFILL_REPEATS; i++) {
    await seq.clearHistory();
    const t0 = performance.now();
    await seq.evaluateWithoutGeneratingNewTokens(prompt);
    if (i > 0) samplesMs.push(r1(performance.now() - t0));
  }
  const tokensPerSecond = r1(prompt.length / (median(samplesMs) / 1000));
  return { threads, tokensPerSecond, samplesMs };
}

async function main(caseName: string): Promise<void> {
  const task = llamaTask(caseName);
  if (!task) throw new Error(`no llama.cpp peer for case "${caseName}"`);
  const fixture = await gpt2Fixture(REPO_ROOT);
  const prompt = fixture.promptIds.slice(0, task.promptTokens);
  const dir = llamaPeerDir(REPO_ROOT);
  const { getLlama } = await loadNodeLlamaCpp(dir);
  const llama = await getLlama({ gpu: false, build: 'never', logLevel: 'error' });
  const llamaCpp = `${llama.llamaCppRelease.repo} ${llama.llamaCppRelease.release}`;
  const systemInfo = llama.systemInfo.trim();
  const t0 = performance.now();
  const model = await llama.loadModel({ modelPath: fixture.gguf, gpuLayers: 0 });
  const loadSeconds = r1((performance.now() - t0) / 1000);
  const runs: LlamaRun[] = [];
  for (const threads of new Set([1, llama.cpuMathCores])) {
    const ctx = await model.createContext({ contextSize: 1024, batchSize: 512, threads });
    runs.push(await measure(ctx, task, prompt));
    await ctx.dispose();
  }
  await model.dispose();
  await llama.dispose();
  const pkg = path.join(dir, 'node_modules', 'node-llama-cpp', 'package.json');
  const { version } = JSON.parse(readFileSync(pkg, 'utf8')) as { version: string };
  const result: Omit<LlamaPeerResult, 'wallSeconds'> = {
    version,
    llamaCpp,
    systemInfo,
    loadSeconds,
    runs,
    peakRssMB: Math.round(process.resourceUsage().maxRSS / 1024),
  };
  process.stdout.write(CHILD_MARK + JSON.stringify(result) + '\n');
}

main(process.argv[2] ?? '').then(
  // node-llama-cpp's worker threads would keep the process alive
  () => process.exit(0),
  (err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  },
);
