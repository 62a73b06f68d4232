/**
 * Imported and exported models against independent implementations:
 *  - a model imported from the Hub's gpt2 layout (no `transformer.` prefix, causal-mask buffers,
 *    GPT-2's vocabulary) gives the log-probabilities of scripts/gpt2_reference.py (PyTorch, reading
 *    the original folder) to 1e-4 in float32 — skipped without PyTorch;
 *  - a GGUF export gives the logits of scripts/gguf_reference.py, which parses the file with
 *    struct and runs llama.cpp's gpt2 graph in numpy — skipped without numpy.
 * No Debian package offers transformers, gguf-py or llama.cpp, so these stand in for them.
 */
import { spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../../src/engine/backend';
import { exportModel } from '../../../src/engine/checkpoint/export';
import { importModel } from '../../../src/engine/checkpoint/import';
import { loadModelDir } from '../../../src/engine/checkpoint/modelDir';
import {
  bpeTok,
  gpt2VocabConfig,
  makeHubGpt2,
  makeRun,
  modelLogits,
  randomIdsFor,
} from './fixtures';
import { pythonHas, tempDir } from '../helpers';

const PYTHON = '/usr/bin/python3';
const hasTorch = pythonHas('torch', 'numpy');
const hasNumpy = pythonHas('numpy');

let root: string;
beforeAll(async () => {
  await initBackend('wasm');
  root = await tempDir();
});
afterAll(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

/** log p(ids[t+1] | ids[..t]) from logits [T·V], in float64. */
function nextLogprobs(logits: ArrayLike<number>, ids: number[], V: number): number[] {
  const out: number[] = [];
  for (let t = 0; t + 1 < ids.length; t++) {
    let max = -Infinity;
    for (let v = 0; v < V; v++) max = Math.max(max, logits[t * V + v]!);
    let sum = 0;
    for (let v = 0; v < V; v++) sum += Math.exp(logits[t * V + v]! - max);
    out.push(logits[t * V + ids[t + 1]!]! - max - Math.log(sum));
  }
  return out;
}

function python(script: string, args: string[], input: unknown): unknown {
  const py = spawnSync(PYTHON, [path.resolve(script), ...args], {
    input: JSON.stringify(input),
    maxBuffer: 1 << 28,
  });
  expect(py.status, py.stderr?.toString()).toBe(0);
  return JSON.parse(py.stdout.toString());
}

describe.skipIf(!hasTorch)('an imported Hub-layout GPT-2 against PyTorch', () => {
  it('log-probabilities agree to 1e-4 (float32)', async () => {
    const cfg = gpt2VocabConfig({ nLayer: 2, nHead: 4, nEmbd: 16, blockSize: 24 });
    const src = path.join(root, 'hub');
    await makeHubGpt2(src, cfg, { seed: 5 });
    const out = path.join(root, 'imported');
    await importModel({ from: src, out });
    const loaded = await loadModelDir(out);
    try {
      const text = "It's 床前明月光 — and  emoji 😀, don't   they?";
      const rows = [loaded.tokenizer.encode(text).slice(0, 24), randomIdsFor(24, 50257, 9)];
      const ref = python('scripts/gpt2_reference.py', [src], { ids: rows, logits: false }) as {
        logprobs: number[][];
      };
      for (const [b, ids] of rows.entries()) {
        expect(ids.length).toBeGreaterThan(5);
        const ours = nextLogprobs(await modelLogits(loaded.model, ids), ids, 50257);
        const theirs = ref.logprobs[b]!;
        expect(ours).toHaveLength(theirs.length);
        const diff = Math.max(...ours.map((x, i) => Math.abs(x - theirs[i]!)));
        expect(diff).toBeLessThan(1e-4);
      }
      // exported again (float32), the reference reads the same model
      const again = path.join(root, 'exported');
      await exportModel({ model: out, out: again });
      const ref2 = python('scripts/gpt2_reference.py', [again], { ids: rows, logits: false }) as {
        logprobs: number[][];
      };
      expect(ref2.logprobs).toEqual(ref.logprobs);
    } finally {
      loaded.model.dispose();
    }
  });
});

describe.skipIf(!hasNumpy)('a GGUF export against an independent llama.cpp-style reader', () => {
  it('has the same logits as the engine (float32), and F16 is close', async () => {
    const run = await makeRun(path.join(root, 'run'), await bpeTok(), {
      cfg: { nLayer: 2, nHead: 2, nEmbd: 16 },
      seed: 8,
    });
    const ids = [randomIdsFor(16, 300, 1), randomIdsFor(7, 300, 2)];
    const loaded = await loadModelDir(run.dir);
    try {
      for (const dtype of ['float32', 'float16'] as const) {
        const out = path.join(root, `gguf-${dtype}`);
        const r = await exportModel({ model: run.dir, out, format: 'gguf', dtype });
        const ref = python('scripts/gguf_reference.py', [path.join(out, r.files[0]!)], {
          ids,
        }) as {
          logits: number[][][];
          metadata: Record<string, unknown>;
          n_tokens: number;
        };
        expect(ref.metadata['general.architecture']).toBe('gpt2');
        expect(ref.n_tokens).toBe(300);
        for (const [b, row] of ids.entries()) {
          const ours = await modelLogits(loaded.model, row);
          const theirs = ref.logits[b]!.flat();
          expect(theirs).toHaveLength(ours.length);
          const diff = Math.max(...theirs.map((x, i) => Math.abs(x - ours[i]!)));
          expect(diff).toBeLessThan(dtype === 'float32' ? 1e-4 : 5e-2);
        }
      }
    } finally {
      loaded.model.dispose();
    }
  });
});
