/**
 * A masked-LM (BERT-style) model from the command line: `pretrain --objective mlm`, fine-tuned from
 * its first position, GPT vs BERT with `finetune --compare gpt-bert`, and the commands a masked-LM
 * cannot serve (generate, score, eval-icl, export to GGUF or Hugging Face) refused with the reason.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Rng } from '../../src/engine/util/rng';
import { cli, jsonLines, last, smallCorpus, STACK_LINE, tmpDir } from './helpers';

let dir: string;
let corpus: string;
let data: string;
let run: string;

const TINY = ['--n-layer', '1', '--n-head', '2', '--n-embd', '16', '--block-size', '24'];
const QUICK = ['--batch-size', '4', '--eval-every', '3', '--eval-iters', '1', '--backend', 'wasm'];
/** One training thread: worker pools take seconds to start. */
const ONE = ['--workers', '1'];
const REASON =
  /is a masked-LM \(BERT-style\) model: it sees both sides of each token, so it cannot generate text left to right or rank continuations; fine-tune it or use a GPT model\./;

beforeAll(async () => {
  dir = await tmpDir('gpt-studio-cli-mlm-');
  corpus = await smallCorpus(dir, 6000);
  const rng = new Rng(5);
  const rows = Array.from({ length: 40 }, () => {
    const pos = rng.next() < 0.5;
    const words = pos ? ['happy', 'lovely', 'good'] : ['dull', 'poor', 'bad'];
    const text = Array.from({ length: 2 + rng.int(3) }, () => words[rng.int(3)]).join(' ');
    return JSON.stringify({ text, label: pos ? 'pos' : 'neg' });
  });
  data = path.join(dir, 'labeled.jsonl');
  await fs.writeFile(data, rows.join('\n') + '\n');
  run = path.join(dir, 'bert');
});

afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

describe('a masked-LM from the CLI', { timeout: 60_000 }, () => {
  it('pretrain --objective mlm trains a masked-LM and records it', async () => {
    const r = await cli([
      'pretrain',
      '--corpus',
      corpus,
      '--out',
      run,
      '--objective',
      'mlm',
      '--steps',
      '4',
      ...TINY,
      ...QUICK,
      ...ONE,
      '--json',
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(last(jsonLines(r.stdout))).toMatchObject({ type: 'result', step: 4 });
    expect(jsonLines(r.stdout).some((e) => (e as { type: string }).type === 'sample')).toBe(false);
    const config = JSON.parse(await fs.readFile(path.join(run, 'config.json'), 'utf8'));
    expect(config.objective).toBe('mlm');
  });

  it('finetune fine-tunes it, reading the first position', async () => {
    const out = path.join(dir, 'bert-ft');
    const r = await cli([
      'finetune',
      '--model',
      run,
      '--task',
      'classification',
      '--data',
      data,
      '--out',
      out,
      '--epochs',
      '1',
      '--batch-size',
      '8',
      ...ONE,
      '--backend',
      'wasm',
      '--json',
    ]);
    expect(r.code, r.stderr).toBe(0);
    const result = last(jsonLines(r.stdout)) as { type: string; metrics: { accuracy: number } };
    expect(result.type).toBe('finetune.result');
    expect(result.metrics.accuracy).toBeGreaterThanOrEqual(0);
    const config = JSON.parse(await fs.readFile(path.join(out, 'config.json'), 'utf8'));
    expect(config.objective).toBe('mlm');
    // the fine-tuned classifier answers from the console's CLI twin, evaluate
    const e = await cli([
      'evaluate',
      '--model',
      out,
      '--data',
      data,
      '--backend',
      'wasm',
      '--json',
    ]);
    expect(e.code, e.stderr).toBe(0);
  });

  it.each([
    ['generate', ['--prompt', 'It is']],
    ['score', ['--text', 'It is a truth']],
    ['eval-icl', ['--data', '$DATA', '--labels', 'pos=good,neg=bad']],
  ])('%s is refused with the reason', async (command, extra) => {
    const args = extra.map((a) => (a === '$DATA' ? data : a));
    const r = await cli([command, '--model', run, ...args, '--backend', 'wasm']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/error: bert is a masked-LM/);
    expect(r.stderr).toMatch(REASON);
    expect(r.stderr).not.toMatch(STACK_LINE);
  });

  it.each([
    [
      'gguf',
      /as GGUF: it is a masked-LM \(BERT-style\) model, and llama\.cpp's gpt2 architecture runs a left-to-right decoder/,
    ],
    [
      'hf',
      /as a Hugging Face folder: it is a masked-LM \(BERT-style\) model, and neither Hugging Face class holds it: BertForMaskedLM's blocks are post-LayerNorm/,
    ],
  ])('export --format %s is refused, saying why', async (format, why) => {
    const out = path.join(dir, `export-${format}`);
    const r = await cli(['export', '--model', run, '--out', out, '--format', format as string]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(why as RegExp);
    await expect(fs.access(out)).rejects.toThrow();
  });

  it('finetune --compare gpt-bert prints one row for each', async () => {
    const r = await cli([
      'finetune',
      '--model',
      run,
      '--task',
      'classification',
      '--data',
      data,
      '--compare',
      'gpt-bert',
      '--pretrain-steps',
      '2',
      '--epochs',
      '1',
      '--batch-size',
      '16',
      ...ONE,
      '--backend',
      'wasm',
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/both pretrained 2 steps, 1 layers × 16 wide, 2 heads, context 24/);
    expect(r.stdout).toMatch(/^GPT\s+clm\s+\d+\s+[\d.]+\s+[\d.]+\s+[\d.]+/m);
    expect(r.stdout).toMatch(/^BERT\s+mlm\s+\d+\s+[\d.]+\s+[\d.]+\s+[\d.]+/m);
  });

  it('--pretrain-steps without --compare is a usage error', async () => {
    const r = await cli([
      'finetune',
      '--model',
      run,
      '--task',
      'classification',
      '--data',
      data,
      '--out',
      path.join(dir, 'x'),
      '--pretrain-steps',
      '2',
    ]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--pretrain-steps applies only to --compare gpt-bert/);
  });
});
