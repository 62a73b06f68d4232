import { spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { interruptCli, jsonLines, last, cli, smallCorpus, STACK_LINE, tmpDir } from './helpers';

const TINY = [
  '--n-layer',
  '1',
  '--n-head',
  '2',
  '--n-embd',
  '32',
  '--block-size',
  '32',
  '--batch-size',
  '4',
  '--eval-every',
  '3',
  '--eval-iters',
  '2',
  '--sample-every',
  '3',
  '--sample-tokens',
  '20',
  '--save-every',
  '3',
  '--backend',
  'wasm',
  // one worker: a pool of worker threads to start on every call would cost more than these few
  // tiny steps (the pool has its own tests, test/engine/train/workers.test.ts; the Ctrl-C case
  // below keeps the default)
  '--workers',
  '1',
];
/** TINY on this machine's default workers. */
const TINY_DEFAULT_WORKERS = TINY.slice(0, -2);

let dir: string;
let corpus: string;
let run: string;

beforeAll(async () => {
  dir = await tmpDir();
  corpus = await smallCorpus(dir);
  run = path.join(dir, 'run');
});

afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

function expectFinite(x: unknown, what: string) {
  expect(typeof x === 'number' && Number.isFinite(x), `${what} = ${String(x)}`).toBe(true);
}

// One run, used by the tests below in order.
describe('pretrain → resume → generate → score', () => {
  it('pretrain --json prints JSON lines ending in the TrainResult', async () => {
    const r = await cli([
      'pretrain',
      '--corpus',
      corpus,
      '--out',
      run,
      '--steps',
      '6',
      ...TINY,
      '--json',
    ]);
    expect(r.stderr).not.toMatch(STACK_LINE);
    expect(r.code).toBe(0);
    const lines = jsonLines(r.stdout);
    expect(lines[0]).toMatchObject({ type: 'backend', name: 'wasm' });
    expect(lines.find((l) => l.type === 'start')).toMatchObject({ backend: 'wasm', step: 0 });
    const types = new Set(lines.map((l) => l.type));
    for (const t of ['tokenizer', 'start', 'step', 'eval', 'sample', 'checkpoint', 'result']) {
      expect(types, `a '${t}' event`).toContain(t);
    }
    const steps = lines.filter((l) => l.type === 'step').map((l) => l.step);
    expect(steps).toEqual([1, 2, 3, 4, 5, 6]);
    const result = last(lines);
    expect(result).toMatchObject({ type: 'result', step: 6, stopped: 'completed' });
    expectFinite(result.trainLoss, 'trainLoss');
    expectFinite(result.valLoss, 'valLoss');
    expectFinite(result.tokensPerSecond, 'tokensPerSecond');
    expect(result.tokensPerSecond as number).toBeGreaterThan(0);
    await fs.access(path.join(run, 'model.safetensors'));
    await fs.access(path.join(run, 'state.json'));
  });

  it('pretrain refuses to overwrite the run', async () => {
    const r = await cli(['pretrain', '--corpus', corpus, '--out', run, ...TINY]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/error: .*already holds a run/);
    expect(r.stderr).not.toMatch(STACK_LINE);
  });

  it('resume --steps 8 continues to step 8 (human output)', async () => {
    const r = await cli(['resume', '--run', run, '--steps', '8', '--backend', 'wasm']);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/^backend: wasm/m);
    // Off a terminal: plain lines, no carriage returns or ANSI codes.
    expect(r.stdout).not.toMatch(/[\r\x1b]/);
    expect(r.stdout).toMatch(/resuming at step 6/);
    expect(r.stdout).toMatch(
      /^step 7\/8 {2}loss \d+\.\d{4} {2}val \d+\.\d{4} {2}\S+ tok\/s {2}ETA \d:\d\d:\d\d$/m,
    );
    expect(r.stdout).toMatch(/^step 8\/8 /m);
    expect(r.stdout).toMatch(/── sample at step 8/);
    expect(r.stdout).toMatch(/done: step 8\/8/);
    const state = JSON.parse(await fs.readFile(path.join(run, 'state.json'), 'utf8')) as {
      step: number;
    };
    expect(state.step).toBe(8);
  });

  it('resume --json ends with step 8 when there is nothing left to do', async () => {
    const r = await cli(['resume', '--run', run, '--backend', 'wasm', '--json']);
    expect(r.code).toBe(0);
    const lines = jsonLines(r.stdout);
    expect(last(lines)).toMatchObject({ type: 'result', step: 8 });
  });

  it('resume --steps N at or below the run’s step is a usage error suggesting both ways', async () => {
    const r = await cli(['resume', '--run', run, '--steps', '5', '--backend', 'wasm']);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain(
      `error: ${run}: the run is at step 8; --steps is the total: use --steps 13 (> 8) or --more 5`,
    );
    expect(r.stderr).not.toMatch(/^backend:/m); // refused before the backend loads
  });

  it('resume --more 2 trains two steps past where the run stopped', async () => {
    const r = await cli(['resume', '--run', run, '--more', '2', '--backend', 'wasm', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const lines = jsonLines(r.stdout);
    expect(lines.find((l) => l.type === 'start')).toMatchObject({ step: 8, totalSteps: 10 });
    expect(lines.filter((l) => l.type === 'step').map((l) => l.step)).toEqual([9, 10]);
    expect(last(lines)).toMatchObject({ type: 'result', step: 10, stopped: 'completed' });
  });

  let greedy: string | undefined;
  it('generate --temperature 0 is deterministic and streams tokens', async () => {
    const args = ['generate', '--model', run, '--prompt', 'It is', '--max-tokens', '12'];
    const a = await cli([...args, '--temperature', '0', '--backend', 'wasm', '--json']);
    const b = await cli([...args, '--temperature', '0', '--backend', 'wasm', '--json']);
    expect(a.code).toBe(0);
    expect(b.code).toBe(0);
    const la = jsonLines(a.stdout);
    const lb = jsonLines(b.stdout);
    expect(la[0]).toMatchObject({ type: 'backend' });
    const ra = last(la);
    const rb = last(lb);
    expect(ra).toMatchObject({ type: 'result', stoppedBy: expect.any(String) });
    expect(ra.text).toBe(rb.text);
    expect(ra.ids).toEqual(rb.ids);
    const tokens = la.filter((l) => l.type === 'token');
    expect(tokens.length).toBe((ra.ids as number[]).length - (ra.stoppedBy === 'eos' ? 1 : 0));
    for (const t of tokens) {
      expect(Object.keys(t).sort()).toEqual(['id', 'logprob', 'text', 'type']);
      expect(t.logprob as number).toBeLessThanOrEqual(0);
    }
    expect(tokens.map((t) => t.text).join('')).toBe(ra.text);
    greedy = ra.text as string;

    // Human mode streams the same text to stdout (no prompt off a terminal).
    const h = await cli([...args, '--temperature', '0', '--backend', 'wasm']);
    expect(h.code).toBe(0);
    expect(h.stdout.replace(/\n$/, '')).toBe(greedy.replace(/\n$/, ''));
    expect(h.stderr).toMatch(/stopped by/);
  });

  it('generate with --no-cache gives the same greedy text', async () => {
    const r = await cli([
      'generate',
      '--model',
      run,
      '--prompt',
      'It is',
      '--max-tokens',
      '12',
      '--temperature',
      '0',
      '--no-cache',
      '--backend',
      'wasm',
      '--json',
    ]);
    expect(r.code).toBe(0);
    expect(last(jsonLines(r.stdout)).text).toBe(greedy);
  });

  it('generate --weights q8 says how the weights are held and their numerics against f32', async () => {
    const args = ['generate', '--model', run, '--prompt', 'It is', '--max-tokens', '4'];
    const h = await cli([...args, '--weights', 'q8', '--backend', 'wasm']);
    expect(h.code, h.stderr).toBe(0);
    expect(h.stderr).toMatch(
      /\[weights: q8 \([\d.]+ [KM]iB\); vs f32 on (the reference text|a fixed sequence of \d+ tokens): mean \|Δlogp\| [\d.e-]+, max [\d.e-]+; loaded in [\d.]+ s\]/,
    );
    const j = await cli([...args, '--weights', 'q8', '--backend', 'wasm', '--json']);
    const w = jsonLines(j.stdout).find((l) => l.type === 'weights')!;
    expect(w).toMatchObject({ format: 'q8', choice: 'q8', numerics: { reference: 'f32' } });
    const f32 = await cli([...args, '--backend', 'wasm', '--json']); // auto: this model fits f32
    expect(jsonLines(f32.stdout).find((l) => l.type === 'weights')).toMatchObject({
      format: 'f32',
      choice: 'auto',
      numerics: null,
    });
  });

  it('score --json: tokens, logprobs ≤ 0 and sum = Σ logprobs', async () => {
    const text = 'It is a truth universally acknowledged';
    const r = await cli(['score', '--model', run, '--text', text, '--backend', 'wasm', '--json']);
    expect(r.code).toBe(0);
    const res = last(jsonLines(r.stdout));
    const tokens = res.tokens as number[];
    const logprobs = res.logprobs as number[];
    expect(tokens.length).toBe(text.length); // a char tokenizer
    expect(logprobs.length).toBe(tokens.length);
    for (const lp of logprobs) expect(lp).toBeLessThanOrEqual(0);
    const sum = logprobs.reduce((a, b) => a + b, 0);
    expect(res.sum as number).toBeCloseTo(sum, 9);
    expect(res.mean as number).toBeCloseTo(sum / logprobs.length, 9);
  });

  it('score --prompt --continuation prints a table and the sum', async () => {
    const r = await cli([
      'score',
      '--model',
      run,
      '--prompt',
      'It is a',
      '--continuation',
      ' truth',
      '--backend',
      'wasm',
    ]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/#\s+id\s+token\s+logprob/);
    expect(r.stdout).toMatch(/" "\s+-\d+\.\d{4}/);
    expect(r.stdout).toMatch(/^sum -\d+\.\d{4} over 6 tokens given "It is a"/m);
  });

  it('explains a prompt the tokenizer cannot encode', async () => {
    const r = await cli(['generate', '--model', run, '--prompt', '☃', '--backend', 'wasm']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/error: --prompt: Character '☃'.*not in this tokenizer's vocabulary/);
    expect(r.stderr).not.toMatch(STACK_LINE);
  });
});

// Signals need a real process (its handlers, the exit codes 130 and 143): these two spawn the CLI.
describe('Ctrl-C', () => {
  it('SIGINT during pretrain saves the run and exits 130; resume continues from there', async () => {
    const out = path.join(dir, 'interrupted');
    const r = await interruptCli(
      [
        'pretrain',
        ...['--corpus', corpus, '--out', out, '--steps', '1000'],
        ...TINY_DEFAULT_WORKERS,
        '--json',
      ],
      /"type":"step"/,
    );
    expect(r.code).toBe(130);
    expect(r.stderr).toMatch(/stopping/);
    const result = last(jsonLines(r.stdout));
    expect(result).toMatchObject({ type: 'result', stopped: 'cancelled' });
    const step = result.step as number;
    expect(step).toBeGreaterThanOrEqual(1);
    expect(step).toBeLessThan(1000);

    const again = await cli([
      'resume',
      '--run',
      out,
      '--steps',
      String(step + 1),
      '--backend',
      'wasm',
      '--json',
    ]);
    expect(again.code).toBe(0);
    const lines = jsonLines(again.stdout);
    expect(lines.find((l) => l.type === 'start')).toMatchObject({ step, resumed: true });
    expect(last(lines)).toMatchObject({ type: 'result', step: step + 1, stopped: 'completed' });
  });

  it('SIGTERM is handled like Ctrl-C: the run is saved, no temp file is left, exit 143', async () => {
    const out = path.join(dir, 'terminated');
    const r = await interruptCli(
      ['pretrain', '--corpus', corpus, '--out', out, '--steps', '1000', ...TINY, '--json'],
      /"type":"step"/,
      'SIGTERM',
    );
    expect(r.code).toBe(143);
    expect(r.stderr).toMatch(/stopping/);
    const result = last(jsonLines(r.stdout));
    expect(result).toMatchObject({ type: 'result', stopped: 'cancelled' });
    const files = await fs.readdir(out);
    expect(files.filter((f) => f.startsWith('.'))).toEqual([]);
    expect(files).toContain(`checkpoint-${result.step as number}`);
  });

  it('a command sweeps the leftovers of dead processes from the folder it writes, and says so', async () => {
    const out = path.join(dir, 'swept');
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']);
    const stale = path.join(out, `.checkpoint-7.${String(dead.stdout)}.tmp`);
    await fs.mkdir(stale, { recursive: true });
    await fs.writeFile(path.join(stale, 'model.safetensors'), Buffer.alloc(1000));
    const r = await cli(['resume', '--run', out, '--backend', 'wasm']);
    expect(r.stderr).toMatch(
      /removed 1 leftover \(.*\) of processes that are gone: .*checkpoint-7/,
    );
    await expect(fs.access(stale)).rejects.toThrow();
  });
});

describe('pretrain --layout gpt1', () => {
  it("trains GPT-1's post-LayerNorm layout, and its checkpoint records it (no ln_f)", async () => {
    const out = path.join(dir, 'gpt1-layout');
    const args = ['pretrain', '--corpus', corpus, '--out', out, '--steps', '2', '--layout', 'gpt1'];
    const model = ['--n-layer', '1', '--n-head', '2', '--n-embd', '32', '--block-size', '32'];
    const quiet = [
      '--batch-size',
      '4',
      '--eval-every',
      '0',
      '--sample-every',
      '0',
      '--workers',
      '1',
    ];
    const r = await cli([...args, ...model, ...quiet, '--backend', 'wasm', '--json']);
    expect(r.stderr).not.toMatch(STACK_LINE);
    expect(r.code).toBe(0);
    const lines = jsonLines(r.stdout);
    expect(lines.filter((l) => l.type === 'step').map((l) => l.step)).toEqual([1, 2]);
    const result = last(lines);
    expect(result).toMatchObject({ type: 'result', step: 2, stopped: 'completed' });
    expectFinite(result.trainLoss, 'trainLoss');
    const config = JSON.parse(await fs.readFile(path.join(out, 'config.json'), 'utf8')) as Record<
      string,
      unknown
    >;
    expect(config).toMatchObject({ layout: 'gpt1', n_layer: 1, n_embd: 32 });
    const weights = await fs.readFile(path.join(out, 'model.safetensors'));
    const header = weights.subarray(8, 8 + Number(weights.readBigUInt64LE(0))).toString();
    expect(header).toContain('transformer.h.0.ln_2.weight');
    expect(header).not.toContain('ln_f');
  });

  it('refuses a layout it does not know, naming the choices', async () => {
    const r = await cli([
      'pretrain',
      '--corpus',
      corpus,
      '--out',
      path.join(dir, 'x'),
      '--layout',
      'gpt3',
    ]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/--layout/);
    expect(r.stderr).toMatch(/gpt2/);
  });
});
