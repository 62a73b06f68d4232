/**
 * The llama.cpp peer of generate-124M and prefill-124M: llama.cpp's prebuilt CPU binaries through
 * node-llama-cpp 3.21.1, run on the GGUF f16 that the app's exporter wrote from the same model
 * (bench/gpt2Fixture.ts), with the same prompt token ids as our side (bench/gpt2Cases.ts).
 *
 * node-llama-cpp is a peer of the bench, not a dependency of the app: scripts/install-bench-peers.sh
 * installs it beside the project in .cache/peers/llama, and it is loaded from there by absolute
 * path. GPT_STUDIO_LLAMA_PEER names another folder holding node_modules/node-llama-cpp.
 *
 * It runs in a child process of its own (bench/llamaChild.ts), so its peak RSS is its own, once
 * with 1 thread (as our wasm decoder, the ratio's denominator) and once with llama.cpp's default,
 * the physical cores (node-llama-cpp's `cpuMathCores`; node-llama-cpp itself would ask for at
 * least 4, which oversubscribes a 2-core machine).
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { ensureGpt2Fixture } from './gpt2Fixture';

const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));
export const LLAMA_PEER_VERSION = '3.21.1';
export const NOT_INSTALLED = 'llama.cpp peer not installed: run scripts/install-bench-peers.sh';
export const CHILD_MARK = '@@llama-result ';

/** What a case asks of both sides: one prompt, then new tokens (generate) or none (prefill). */
export interface LlamaTask {
  task: 'generate' | 'prefill';
  promptTokens: number;
  /** generate: tokens made after the prompt, greedy, end-of-text ignored. */
  newTokens?: number;
}

const LLAMA_TASKS: Record<string, LlamaTask> = {
  'generate-124M': { task: 'generate', promptTokens: 32, newTokens: 128 },
  'prefill-124M': { task: 'prefill', promptTokens: 512 },
};

/** Timed prefills on each side (their median, after one warm-up). */
export const PREFILL_REPEATS = 3;

export function llamaTask(name: string): LlamaTask | undefined {
  return LLAMA_TASKS[name];
}

/** One thread setting's figure in one run of the peer. */
export interface LlamaRun {
  threads: number;
  tokensPerSecond: number;
  /** The timed runs, in ms. */
  samplesMs: number[];
  /** generate: the greedy tokens. */
  tokens?: number[];
}

export interface LlamaPeerResult {
  version: string;
  /** llama.cpp's release the binaries were built from. */
  llamaCpp: string;
  /** llama.cpp's CPU features line. */
  systemInfo: string;
  loadSeconds: number;
  /** threads 1 first, then llama.cpp's default (when it is not 1). */
  runs: LlamaRun[];
  peakRssMB: number;
  wallSeconds: number;
}

export function llamaPeerDir(repoRoot: string): string {
  return process.env.GPT_STUDIO_LLAMA_PEER ?? path.join(repoRoot, '.cache', 'peers', 'llama');
}

/** node-llama-cpp's version in `dir` (see llamaPeerDir), or why it cannot be used. */
export function probeLlamaPeer(dir: string): { version: string } | { reason: string } {
  const pkg = path.join(dir, 'node_modules', 'node-llama-cpp', 'package.json');
  if (!existsSync(pkg)) return { reason: `${NOT_INSTALLED} (looked in ${dir})` };
  const { version } = JSON.parse(readFileSync(pkg, 'utf8')) as { version: string };
  if (version === LLAMA_PEER_VERSION) return { version };
  return {
    reason: `node-llama-cpp ${version} is in ${dir}, the bench pins ${LLAMA_PEER_VERSION}: run scripts/install-bench-peers.sh`,
  };
}

// The part of node-llama-cpp 3.21.1's API used here and in test/engine/checkpoint/gguf-llama.test.ts
// (it is loaded by path, so tsc never sees its own types).

/** What `controlledEvaluate` computed after one input token. */
export interface LlamaNextToken {
  next: { token?: number | null; probabilities?: Map<number, number> };
}
/** One input of `controlledEvaluate`: a token, or a token and what to compute after it. */
export type LlamaControlledInput =
  | number
  | [
      token: number,
      options: {
        generateNext: {
          token?: boolean;
          probabilities?: boolean;
          options?: { temperature?: number; seed?: number };
        };
      },
    ];
export interface LlamaSequence {
  clearHistory(): Promise<void>;
  evaluate(tokens: number[], options: { temperature: number }): AsyncGenerator<number>;
  evaluateWithoutGeneratingNewTokens(tokens: number[]): Promise<void>;
  controlledEvaluate(input: LlamaControlledInput[]): Promise<Array<LlamaNextToken | undefined>>;
}
export interface LlamaContext {
  currentThreads: number;
  getSequence(): LlamaSequence;
  dispose(): Promise<void>;
}
export interface LlamaContextOptions {
  contextSize: number;
  batchSize: number;
  threads: number;
  /** Default 'auto': on, on the CPU. */
  flashAttention?: boolean;
  /** The KV cache's ggml types (default 'F16'). */
  experimentalKvCacheKeyType?: 'F16' | 'F32';
  experimentalKvCacheValueType?: 'F16' | 'F32';
}
export interface LlamaModel {
  createContext(o: LlamaContextOptions): Promise<LlamaContext>;
  tokenize(text: string): number[];
  detokenize(tokens: readonly number[]): string;
  dispose(): Promise<void>;
}
export interface Llama {
  cpuMathCores: number;
  llamaCppRelease: { repo: string; release: string };
  systemInfo: string;
  loadModel(o: { modelPath: string; gpuLayers: number }): Promise<LlamaModel>;
  dispose(): Promise<void>;
}
export interface NodeLlamaCpp {
  getLlama(o: { gpu: false; build: 'never'; logLevel: 'error' }): Promise<Llama>;
}

/** node-llama-cpp from `dir` (see llamaPeerDir), imported by absolute path: it is ESM only. */
export async function loadNodeLlamaCpp(dir: string): Promise<NodeLlamaCpp> {
  const entry = path.join(dir, 'node_modules', 'node-llama-cpp', 'dist', 'index.js');
  if (!existsSync(entry)) throw new Error(`${NOT_INSTALLED} (no ${entry})`);
  return (await import(pathToFileURL(entry).href)) as NodeLlamaCpp;
}

/** Runs bench/llamaChild.ts for `caseName` and reads its result line. */
function runChild(dir: string, caseName: string, timeoutMs = 15 * 60_000) {
  const script = fileURLToPath(new URL('./llamaChild.ts', import.meta.url));
  const t0 = performance.now();
  return new Promise<LlamaPeerResult>((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', script, caseName], {
      cwd: REPO_ROOT,
      env: { ...process.env, GPT_STUDIO_LLAMA_PEER: dir },
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: timeoutMs,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      const line = stdout.split('\n').find((l) => l.startsWith(CHILD_MARK));
      if (code === 0 && line) {
        const r = JSON.parse(line.slice(CHILD_MARK.length)) as LlamaPeerResult;
        resolve({ ...r, wallSeconds: r1((performance.now() - t0) / 1000) });
      } else {
        const why = (stderr + stdout).trim().split('\n').slice(-3).join(' | ');
        reject(new Error(`exit ${signal ?? code}: ${why}`));
      }
    });
  });
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const r1 = (x: number) => Math.round(x * 10) / 10;
const r3 = (x: number) => Math.round(x * 1000) / 1000;

/** The peer's figures in a case's row (medians over --repeat). */
export interface LlamaRow {
  version: string;
  llamaCpp: string;
  /** With 1 thread, as our wasm decoder: the ratio's denominator. */
  tokensPerSecond: number;
  threads: 1;
  /** With llama.cpp's default threads (the physical cores), when that is not 1. */
  defaultThreads?: { threads: number; tokensPerSecond: number; ratio: number | null };
  loadSeconds: number;
  peakRssMB: number;
  seconds: number;
}

function llamaRow(results: LlamaPeerResult[], ours: number | undefined): LlamaRow | null {
  if (results.length === 0) return null;
  const at = (i: number) => results.map((r) => r.runs[i]).filter((x): x is LlamaRun => !!x);
  const row: LlamaRow = {
    version: results[0]!.version,
    llamaCpp: results[0]!.llamaCpp,
    tokensPerSecond: r1(median(at(0).map((r) => r.tokensPerSecond))),
    threads: 1,
    loadSeconds: median(results.map((r) => r.loadSeconds)),
    peakRssMB: Math.max(...results.map((r) => r.peakRssMB)),
    seconds: median(results.map((r) => r.wallSeconds)),
  };
  const more = at(1);
  if (more.length) {
    const tps = median(more.map((r) => r.tokensPerSecond));
    row.defaultThreads = {
      threads: more[0]!.threads,
      tokensPerSecond: r1(tps),
      ratio: ours !== undefined ? r3(ours / tps) : null,
    };
  }
  return row;
}

/** How far our greedy tokens and llama.cpp's (1 thread) agree. */
function agreementNote(ours: number[] | undefined, peer: LlamaPeerResult | undefined) {
  const theirs = peer?.runs[0]?.tokens;
  if (!ours || !theirs) return [];
  let same = 0;
  while (same < ours.length && ours[same] === theirs[same]) same++;
  if (same === ours.length && ours.length === theirs.length) {
    return [`greedy tokens: all ${ours.length} the same as llama.cpp's`];
  }
  return [
    `greedy tokens: the first ${same} of ${ours.length} the same as llama.cpp's (its matmuls ` +
      'round activations to f16, ours stay f32: a near-tie can go either way, then the texts part)',
  ];
}

/** One repetition of a case: ours, and the llama.cpp peer's (null when skipped or failed). */
export interface LlamaCaseRun {
  ours: { tokensPerSecond?: number; tokens?: number[] };
  llama?: LlamaPeerResult | null;
}

/**
 * A llama case's row from its repetitions: llama.cpp's medians, ours / theirs (on 1 thread) and
 * the notes, `why` among them when the peer was skipped or failed.
 */
export function summariseLlama(
  runs: readonly LlamaCaseRun[],
  ours: number | undefined,
  why?: string,
): { llama: LlamaRow | null; ratio: number | null; notes: string[] } {
  const results = runs.map((r) => r.llama).filter((x): x is LlamaPeerResult => !!x);
  const llama = llamaRow(results, ours);
  const ratio = llama && ours !== undefined ? r3(ours / llama.tokensPerSecond) : null;
  const notes = agreementNote(runs[0]?.ours.tokens, results[0]);
  if (why) notes.push(`llama.cpp peer: ${why}`);
  return { llama, ratio, notes };
}

/**
 * The llama.cpp cases as the bench's parent sees them: the fixture built before the first case,
 * the peer found once, run once per repetition, and its failures kept as the case's notes.
 */
export class LlamaCases {
  private readonly failures = new Map<string, string>();

  private constructor(
    private readonly dir: string,
    readonly version: string | undefined,
    private readonly skipped: string | undefined,
  ) {}

  /** Undefined when no selected case needs llama.cpp. */
  static async open(
    cases: readonly string[],
    peer: boolean,
    progress: (s: string) => void,
  ): Promise<LlamaCases | undefined> {
    if (!cases.some((c) => llamaTask(c))) return undefined;
    await ensureGpt2Fixture(REPO_ROOT, progress);
    const dir = llamaPeerDir(REPO_ROOT);
    if (!peer) return new LlamaCases(dir, undefined, 'skipped (--no-peer)');
    const found = probeLlamaPeer(dir);
    if ('reason' in found) {
      progress(`llama.cpp peer skipped: ${found.reason}`);
      return new LlamaCases(dir, undefined, `skipped: ${found.reason}`);
    }
    progress(`llama.cpp peer: node-llama-cpp ${found.version} in ${dir}`);
    return new LlamaCases(dir, found.version, undefined);
  }

  /** Whether the peer runs (it is installed, and not skipped with --no-peer). */
  get available(): boolean {
    return this.skipped === undefined;
  }

  /** The peer's result for one repetition of `name`, or null. */
  async run(name: string, progress: (s: string) => void): Promise<LlamaPeerResult | null> {
    if (!llamaTask(name) || this.skipped) return null;
    try {
      return await runChild(this.dir, name);
    } catch (err) {
      const why = `failed: ${(err as Error).message}`;
      progress(`  [${name}] llama.cpp peer ${why}`);
      this.failures.set(name, why);
      return null;
    }
  }

  /** The row's `llama` figures, the ratio (ours / llama.cpp on 1 thread) and the notes. */
  summarise(name: string, runs: readonly LlamaCaseRun[], ours: number | undefined) {
    return summariseLlama(runs, ours, this.skipped ?? this.failures.get(name));
  }

  /** The peer in the results file. */
  describe() {
    return this.skipped
      ? { skipped: this.skipped }
      : {
          package: `node-llama-cpp ${this.version}`,
          dir: this.dir,
          threads: '1, then the physical cores',
        };
  }
}
