/** `presets`: the model presets with their parameter counts and memory estimates. */
import { layoutOf } from '../../engine/model/config';
import type { OptionSpec } from '../args';
import { startBackend, EXIT, type Command, type Context } from '../runtime';

const OPTIONS: OptionSpec[] = [
  {
    name: 'vocab-size',
    kind: 'int',
    value: 'N',
    defaultText: '65 (a character vocabulary)',
    description: 'vocabulary size to count the embedding with',
  },
  {
    name: 'batch-size',
    kind: 'int',
    value: 'N',
    defaultText: '16',
    description: 'micro-batch for the training-memory estimate',
  },
];

async function run(ctx: Context): Promise<number> {
  const { args, out } = ctx;
  const vocab = args.number('vocab-size') ?? 65;
  const batch = args.number('batch-size') ?? 16;
  const report = await startBackend(ctx);
  const { PRESETS, presetConfig, estimateTrainingMemory, formatBytes } =
    await import('../../engine/model/presets');
  const limit = report.memoryLimitBytes;
  const rows = (Object.keys(PRESETS) as Array<keyof typeof PRESETS>).map((name) => {
    const cfg = presetConfig(name, vocab);
    const est = estimateTrainingMemory(cfg, batch);
    return {
      name,
      nLayer: cfg.nLayer,
      nHead: cfg.nHead,
      nEmbd: cfg.nEmbd,
      blockSize: cfg.blockSize,
      layout: layoutOf(cfg),
      params: est.params,
      memoryBytes: est.totalBytes,
      fits: est.totalBytes <= limit,
    };
  });
  if (out.json) {
    out.emit({
      type: 'result',
      backend: report.name,
      memoryLimitBytes: limit,
      vocab,
      batch,
      presets: rows,
    });
    return EXIT.ok;
  }
  out.line(`vocab ${vocab}, micro-batch ${batch}, ${report.name} backend (${formatBytes(limit)})`);
  out.line('preset  layers  heads  dims  context  layout      params  training memory');
  for (const r of rows) {
    out.line(
      `${r.name.padEnd(6)}  ${String(r.nLayer).padStart(6)}  ${String(r.nHead).padStart(5)}  ` +
        `${String(r.nEmbd).padStart(4)}  ${String(r.blockSize).padStart(7)}  ${r.layout.padEnd(6)}  ` +
        `${(r.params / 1e6).toFixed(2).padStart(9)}M  ${formatBytes(r.memoryBytes).padStart(10)}` +
        (r.fits ? '' : '  does not fit: pretrain will suggest a smaller micro-batch'),
    );
  }
  return EXIT.ok;
}

export const command: Command = {
  command: 'presets',
  summary: 'the model presets: parameters and training memory',
  usage: '[--vocab-size N] [--batch-size N] [options]',
  description:
    "Lists tiny, small and gpt1 with their parameter count and an estimate of one training step's " +
    "peak memory, checked against the backend's limit (wasm: 4 GiB) as pretrain checks it.",
  options: OPTIONS,
  examples: ['presets', 'presets --vocab-size 40478 --batch-size 8'],
  run,
};
