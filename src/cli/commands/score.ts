/** `score`: the log-probability a model gives a text, token by token. */
import { UsageError, type OptionSpec } from '../args';
import { startBackend, EXIT, type Command, type Context } from '../runtime';
import type { WeightsChoice } from '../../common/console';
import { describeWeights, encodeOption, loadModel, MODEL_OPTION, WEIGHTS_OPTION } from './shared';

const OPTIONS: OptionSpec[] = [
  MODEL_OPTION,
  WEIGHTS_OPTION,
  {
    name: 'text',
    kind: 'string',
    value: 'TEXT',
    description: 'score every token of TEXT, each given the ones before it',
  },
  {
    name: 'prompt',
    kind: 'string',
    value: 'TEXT',
    defaultText: 'empty (<|endoftext|>)',
    description: 'context for --continuation; conditions but is not scored',
  },
  {
    name: 'continuation',
    kind: 'string',
    value: 'TEXT',
    description: 'score log P(continuation | prompt)',
  },
];

async function run(ctx: Context): Promise<number> {
  const { args, out } = ctx;
  const text = args.string('text');
  const prompt = args.string('prompt');
  const continuation = args.string('continuation');
  if (text !== undefined && (prompt !== undefined || continuation !== undefined)) {
    throw new UsageError('give either --text, or --prompt with --continuation', 'score');
  }
  if (text === undefined && continuation === undefined) {
    throw new UsageError(
      prompt !== undefined
        ? '--prompt needs --continuation'
        : 'give --text, or --prompt and --continuation',
      'score',
    );
  }
  await startBackend(ctx);
  const { scoreContinuation, scoreText } = await import('../../engine/score');
  const { refuseMaskedLmDir } = await import('../../engine/checkpoint/objective');
  await refuseMaskedLmDir(args.requireString('model'));
  const { model, tokenizer, weights } = await loadModel(
    args.requireString('model'),
    args.string('weights') as WeightsChoice,
  );
  if (!out.json) out.note(out.dim(`[${describeWeights(weights)}]`));
  try {
    let result;
    if (text !== undefined) {
      encodeOption(tokenizer, text, '--text');
      result = await scoreText(model, tokenizer, text);
    } else {
      encodeOption(tokenizer, prompt ?? '', '--prompt');
      encodeOption(tokenizer, continuation!, '--continuation');
      result = await scoreContinuation(model, tokenizer, prompt ?? '', continuation!);
    }
    const pieces = result.tokens.map((id) => tokenizer.decode([id]));
    if (out.json) {
      out.emit({
        type: 'result',
        tokens: result.tokens,
        logprobs: result.logprobs,
        sum: result.sum,
        mean: result.mean,
        pieces,
      });
      return EXIT.ok;
    }
    const rows = result.tokens.map((id, i) => ({
      n: String(i + 1),
      id: String(id),
      piece: JSON.stringify(pieces[i]),
      lp: result.logprobs[i]!.toFixed(4),
    }));
    const w = {
      n: Math.max(1, ...rows.map((r) => r.n.length)),
      id: Math.max(2, ...rows.map((r) => r.id.length)),
      piece: Math.max(5, ...rows.map((r) => r.piece.length)),
      lp: Math.max(7, ...rows.map((r) => r.lp.length)),
    };
    if (rows.length) {
      out.line(
        `${'#'.padStart(w.n)}  ${'id'.padStart(w.id)}  ${'token'.padEnd(w.piece)}  ${'logprob'.padStart(w.lp)}`,
      );
    }
    for (const r of rows) {
      out.line(
        `${r.n.padStart(w.n)}  ${r.id.padStart(w.id)}  ${r.piece.padEnd(w.piece)}  ${r.lp.padStart(w.lp)}`,
      );
    }
    const n = result.tokens.length;
    const given = text !== undefined || !prompt ? '<|endoftext|>' : JSON.stringify(prompt);
    out.line(
      `sum ${result.sum.toFixed(4)} over ${n} token${n === 1 ? '' : 's'} given ${given}` +
        (n
          ? ` (mean ${result.mean.toFixed(4)}, perplexity ${Math.exp(-result.mean).toFixed(2)})`
          : ''),
    );
    return EXIT.ok;
  } finally {
    model.dispose();
  }
}

export const command: Command = {
  command: 'score',
  summary: 'log-probability of a text, or of a continuation given a prompt',
  usage: '--model DIR (--text TEXT | --prompt TEXT --continuation TEXT) [options]',
  description:
    'Prints log P of each token given the tokens before it (natural log), and their sum: a table ' +
    'by default; with --json the last line is {"type":"result","tokens","logprobs","sum","mean",' +
    '"pieces"} (tokens are ids, pieces their text).',
  options: OPTIONS,
  examples: [
    'score --model runs/austen --text "It is a truth universally acknowledged"',
    'score --model runs/austen --prompt "The capital of France is" --continuation " Paris"',
  ],
  run,
};
