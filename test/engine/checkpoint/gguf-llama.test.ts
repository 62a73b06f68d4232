/**
 * A GGUF export checked by llama.cpp itself: node-llama-cpp 3.21.1 (the bench's peer, installed
 * beside the project by scripts/install-bench-peers.sh) loads the f32 and the f16 file the app's
 * exporter wrote, on the CPU, and
 *  - tokenizes texts exactly as the app's tokenizer does;
 *  - makes the same 20 greedy tokens as the app's generate();
 *  - gives the same next-token probabilities at every position, within llama.cpp's f16 roundings
 *    (see SETTINGS).
 * Skipped, with the install script's message, when the peer is not installed.
 *
 * The model: a byte-level BPE of 384 tokens trained on Austen and Tang poems, 2 layers, 64 wide,
 * seeded random weights rounded to float16, so the app's float32 model, the f32 GGUF and the f16
 * GGUF hold the very same numbers. The weights are scaled so the next-token distributions are
 * peaked (top-1 probabilities of 0.15 to 0.7) but not degenerate, and the seed is one whose 20
 * greedy steps have no near-tie (GREEDY_MARGIN): a tie could go either way within the tolerances.
 */
import { promises as fs, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  llamaPeerDir,
  loadNodeLlamaCpp,
  probeLlamaPeer,
  type Llama,
  type LlamaContextOptions,
  type LlamaControlledInput,
  type LlamaModel,
  type LlamaNextToken,
} from '../../../bench/llama';
import { initBackend } from '../../../src/engine/backend';
import { exportModel, type ExportDtype } from '../../../src/engine/checkpoint/export';
import { saveGpt2Weights, writeHfConfig } from '../../../src/engine/checkpoint/gpt2';
import { loadModelDir, type LoadedModel } from '../../../src/engine/checkpoint/modelDir';
import { f16ToF32, f32ToF16 } from '../../../src/engine/checkpoint/safetensors';
import { generate } from '../../../src/engine/generate';
import type { GPTConfig } from '../../../src/engine/model/config';
import { paramShapes } from '../../../src/engine/model/params';
import { trainTokenizer, type Tokenizer } from '../../../src/engine/tokenizer';
import { Rng } from '../../../src/engine/util/rng';
import { modelLogits } from './fixtures';
import { tempDir } from '../helpers';

const REPO_ROOT = fileURLToPath(new URL('../../..', import.meta.url));
const peer = probeLlamaPeer(llamaPeerDir(REPO_ROOT));
const skipped = 'reason' in peer ? peer.reason : null;
// vitest's default reporter does not list the names of skipped tests: say why here
if (skipped) console.warn(`GGUF in llama.cpp skipped: ${skipped}`);

/**
 * How llama.cpp runs each file, and what it may differ by. Its defaults on the CPU: flash attention
 * ('auto' turns it on; its CPU kernel works in f16: with an f32 KV cache it gave the very same
 * figures) and an f16 KV cache; its GELU always goes through an f16 lookup table, and with the f16
 * file its matmuls round their inputs to f16. Without flash attention and with an f32 KV cache only
 * the GELU table is left: emulating it in numpy (scripts/gguf_reference.py's graph) took that
 * case's max |Δlog p| from 3.9e-3 to 1.1e-3 and its mean from 7e-4 to 6e-5.
 *
 * Measured on 2026-12-07 (x86-64 AVX2, 1 thread), over all 384 tokens at all 53 positions:
 *   f32 file, defaults:             max |Δp| 1.1e-3, max |Δlog p| 1.6e-2, mean |Δlog p| 1.9e-3
 *   f16 file, defaults:             max |Δp| 2.1e-3, max |Δlog p| 1.9e-2, mean |Δlog p| 2.5e-3
 *   f32 file, f32 KV, no flash att: max |Δp| 3.6e-4, max |Δlog p| 3.9e-3, mean |Δlog p| 7.0e-4
 * (No flash attention with the f16 KV cache: max |Δlog p| 1.0e-2.) The bounds leave a factor of
 * about 5.
 */
const DEFAULTS_TOLERANCE = { maxAbsProb: 1e-2, maxAbsLogprob: 0.1, meanAbsLogprob: 1.5e-2 };
const SETTINGS: ReadonlyArray<{
  dtype: ExportDtype;
  label: string;
  context: Partial<LlamaContextOptions>;
  tolerance: { maxAbsProb: number; maxAbsLogprob: number; meanAbsLogprob: number };
}> = [
  { dtype: 'float32', label: "llama.cpp's defaults", context: {}, tolerance: DEFAULTS_TOLERANCE },
  { dtype: 'float16', label: "llama.cpp's defaults", context: {}, tolerance: DEFAULTS_TOLERANCE },
  {
    dtype: 'float32',
    label: 'an f32 KV cache and no flash attention',
    context: {
      flashAttention: false,
      experimentalKvCacheKeyType: 'F32',
      experimentalKvCacheValueType: 'F32',
    },
    tolerance: { maxAbsProb: 2e-3, maxAbsLogprob: 2e-2, meanAbsLogprob: 3e-3 },
  },
];
/** The smallest gap (nats) between the app's top two logits at each greedy step. */
const GREEDY_MARGIN = 0.2;
const NEW_TOKENS = 20;
const SEED = 13;
const CFG: Omit<GPTConfig, 'vocabSize'> = {
  blockSize: 64,
  nLayer: 2,
  nHead: 2,
  nEmbd: 64,
  dropout: 0,
  layerNormEpsilon: 1e-5,
  activation: 'gelu_new',
  bias: true,
};
const PROMPT = 'It is a truth universally acknowledged, that a single man';
const TEXTS = [
  PROMPT,
  'Don\'t! He said: "well..." -- (ok?)',
  'a  b   c\t\td\n\n\nnew  lines \n',
  '   leading and trailing   ',
  "I'll we've they're it's",
  '123 4567 89,000.5',
  'café 東京 naïve — “quotes” 😀',
  '床前明月光，疑是地上霜。',
  'crlf\r\nnbsp\u00a0x ideographic\u3000space',
  'e\u0301 x² ½ Ⅻ ٣ 🇫🇷 👩‍👩‍👧',
  '<|endoftext|> as plain text',
];

function sample(file: string, chars: number): string {
  return readFileSync(path.join(REPO_ROOT, 'resources', 'samples', file), 'utf8').slice(0, chars);
}

async function tokenizer(): Promise<Tokenizer> {
  async function* corpus() {
    yield sample('austen.txt', 60_000);
    yield sample('tang300.txt', 8_000);
  }
  return trainTokenizer({ kind: 'bpe', vocabSize: 384, corpus: corpus() });
}

/**
 * Seeded normal weights, float16-exact. A small token embedding, larger block matrices and a
 * final LayerNorm gain of 6: the blocks, not the (tied) embedding of the last token, decide
 * the next token, and the distributions are peaked.
 */
function weights(cfg: GPTConfig): Map<string, Float32Array> {
  const rng = new Rng(SEED);
  const params = new Map<string, Float32Array>();
  for (const [name, shape] of paramShapes(cfg)) {
    const layerNorm = /ln_\w+\.weight$/.test(name);
    const base = name === 'ln_f.weight' ? 6 : layerNorm ? 1 : 0;
    const std =
      name === 'wte.weight' ? 0.05 : layerNorm ? 0.1 : name.endsWith('.bias') ? 0.02 : 0.2;
    const data = Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => {
      return base + rng.normal() * std;
    });
    params.set(name, f16ToF32(f32ToF16(data)));
  }
  return params;
}

async function writeModelDir(dir: string, tok: Tokenizer): Promise<void> {
  const cfg: GPTConfig = { ...CFG, vocabSize: tok.vocabSize };
  await fs.mkdir(dir, { recursive: true });
  await tok.save(dir);
  const eos = tok.eosId ?? null;
  await writeHfConfig(path.join(dir, 'config.json'), cfg, { bos_token_id: eos, eos_token_id: eos });
  await saveGpt2Weights(path.join(dir, 'model.safetensors'), cfg, weights(cfg));
}

function logSoftmaxRows(logits: Float32Array, vocab: number): Float32Array[] {
  const rows: Float32Array[] = [];
  for (let at = 0; at < logits.length; at += vocab) {
    const row = logits.subarray(at, at + vocab);
    const max = Math.max(...row);
    let sum = 0;
    for (const v of row) sum += Math.exp(v - max);
    const lse = max + Math.log(sum);
    rows.push(row.map((v) => v - lse));
  }
  return rows;
}

/** The gap between the two largest values. */
function topGap(row: Float32Array): number {
  const [a, b] = [...row].sort((x, y) => y - x);
  return a! - b!;
}

/** llama.cpp's side of one file: its tokenization and greedy run, and its distributions. */
interface LlamaSide {
  prompt: number[];
  /** The greedy tokens after the prompt. */
  tokens: number[];
  /** The next-token probabilities after each prompt token and each greedy token but the last. */
  probs: Float32Array[];
}

const probsOf = (out: LlamaNextToken | undefined, vocab: number): Float32Array => {
  const p = new Float32Array(vocab);
  for (const [id, v] of out!.next.probabilities!) p[id] = v;
  return p;
};

/**
 * The prompt in one batch with the probabilities after every token, then one token at a time
 * through the KV cache: greedy (temperature 0), with the probabilities before each choice.
 */
async function runLlama(
  model: LlamaModel,
  vocab: number,
  context: Partial<LlamaContextOptions>,
): Promise<LlamaSide> {
  const ctx = await model.createContext({
    contextSize: CFG.blockSize,
    batchSize: 64,
    threads: 1,
    ...context,
  });
  try {
    const seq = ctx.getSequence();
    const next = { token: true, probabilities: true, options: { temperature: 0, seed: SEED } };
    const prompt = model.tokenize(PROMPT);
    const outs = await seq.controlledEvaluate(
      prompt.map((t): LlamaControlledInput => [t, { generateNext: next }]),
    );
    const probs = outs.map((o) => probsOf(o, vocab));
    let last = outs.at(-1)!;
    const tokens: number[] = [];
    for (;;) {
      tokens.push(last.next.token!);
      if (tokens.length === NEW_TOKENS) break;
      [last] = (await seq.controlledEvaluate([[tokens.at(-1)!, { generateNext: next }]])) as [
        LlamaNextToken,
      ];
      probs.push(probsOf(last, vocab));
    }
    return { prompt, tokens, probs };
  } finally {
    await ctx.dispose();
  }
}

/** |Δp| and |Δlog p| over every token at every position. */
function differences(ours: Float32Array[], theirs: Float32Array[]) {
  let maxAbsProb = 0;
  let maxAbsLogprob = 0;
  let sum = 0;
  let n = 0;
  ours.forEach((lp, pos) => {
    lp.forEach((l, id) => {
      const p = theirs[pos]![id]!;
      maxAbsProb = Math.max(maxAbsProb, Math.abs(Math.exp(l) - p));
      const d = Math.abs(l - Math.log(p));
      maxAbsLogprob = Math.max(maxAbsLogprob, d);
      sum += d;
      n++;
    });
  });
  return { maxAbsProb, maxAbsLogprob, meanAbsLogprob: sum / n };
}

describe.skipIf(skipped !== null)(
  skipped ? `GGUF in llama.cpp (skipped: ${skipped})` : 'GGUF in llama.cpp (node-llama-cpp)',
  () => {
    let root: string;
    let tok: Tokenizer;
    let app: LoadedModel;
    let llama: Llama;
    const files = new Map<ExportDtype, string>();

    beforeAll(async () => {
      await initBackend('wasm');
      root = await tempDir('gpt-studio-gguf-llama-');
      tok = await tokenizer();
      const dir = path.join(root, 'model');
      await writeModelDir(dir, tok);
      for (const dtype of ['float32', 'float16'] as const) {
        const out = path.join(root, `gguf-${dtype}`);
        const r = await exportModel({ model: dir, out, format: 'gguf', dtype });
        files.set(dtype, path.join(out, r.files[0]!));
      }
      app = await loadModelDir(dir);
      const { getLlama } = await loadNodeLlamaCpp(llamaPeerDir(REPO_ROOT));
      llama = await getLlama({ gpu: false, build: 'never', logLevel: 'error' });
    });
    afterAll(async () => {
      app?.model.dispose();
      await llama?.dispose();
      if (root) await fs.rm(root, { recursive: true, force: true });
    });

    async function withLlamaModel<R>(dtype: ExportDtype, f: (m: LlamaModel) => Promise<R>) {
      const model = await llama.loadModel({ modelPath: files.get(dtype)!, gpuLayers: 0 });
      try {
        return await f(model);
      } finally {
        await model.dispose();
      }
    }

    it("tokenizes like the app's tokenizer, and decodes back to the text", async () => {
      await withLlamaModel('float32', async (model) => {
        for (const text of TEXTS) {
          const ids = tok.encode(text);
          expect([...model.tokenize(text)], JSON.stringify(text)).toEqual(ids);
          expect(model.detokenize(ids), JSON.stringify(text)).toBe(text);
        }
      });
    });

    for (const { dtype, label, context, tolerance } of SETTINGS) {
      it(`${dtype} with ${label}: the same ${NEW_TOKENS} greedy tokens and next-token probabilities`, async () => {
        const vocab = tok.vocabSize;
        const ours = await generate(app.model, tok, PROMPT, {
          maxNewTokens: NEW_TOKENS,
          temperature: 0,
        });
        expect(ours.stoppedBy).toBe('length');
        const theirs = await withLlamaModel(dtype, (m) => runLlama(m, vocab, context));

        expect(theirs.prompt).toEqual(tok.encode(PROMPT));

        // the app's distributions at every position, from one uncached forward pass
        const seen = [...theirs.prompt, ...ours.ids.slice(0, -1)];
        const lp = logSoftmaxRows(await modelLogits(app.model, seen), vocab);
        expect(theirs.probs).toHaveLength(lp.length);
        // no greedy step is a near-tie, so equal tokens are not luck
        const gaps = lp.slice(theirs.prompt.length - 1).map(topGap);
        expect(Math.min(...gaps)).toBeGreaterThan(GREEDY_MARGIN);

        const same = ours.ids.findIndex((id, i) => theirs.tokens[i] !== id);
        const d = differences(lp, theirs.probs);
        console.log(
          `GGUF ${dtype}, ${label}: the first ${same < 0 ? NEW_TOKENS : same} of ${NEW_TOKENS} ` +
            `greedy tokens equal; over ${lp.length} positions × ${vocab} tokens: ` +
            `max |Δp| ${d.maxAbsProb.toExponential(2)}, ` +
            `max |Δlog p| ${d.maxAbsLogprob.toExponential(2)}, ` +
            `mean |Δlog p| ${d.meanAbsLogprob.toExponential(2)}`,
        );
        expect(theirs.tokens).toEqual(ours.ids);
        expect(d.maxAbsProb).toBeLessThan(tolerance.maxAbsProb);
        expect(d.maxAbsLogprob).toBeLessThan(tolerance.maxAbsLogprob);
        expect(d.meanAbsLogprob).toBeLessThan(tolerance.meanAbsLogprob);
      });
    }
  },
);
