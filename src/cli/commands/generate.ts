/** `generate`: continue a prompt with a trained model, streaming the text. */
import type { WeightsChoice } from '../../common/console';
import { unescapeField } from '../../common/escapes';
import type { SamplingOptions } from '../../engine/generate';
import { SAMPLING_DEFAULTS } from '../defaults';
import type { OptionSpec } from '../args';
import { formatCount } from '../output';
import { EXIT, onInterrupt, startBackend, type Command, type Context } from '../runtime';
import { describeWeights, encodeOption, loadModel, MODEL_OPTION, WEIGHTS_OPTION } from './shared';

const S = SAMPLING_DEFAULTS;

const OPTIONS: OptionSpec[] = [
  MODEL_OPTION,
  WEIGHTS_OPTION,
  {
    name: 'prompt',
    kind: 'string',
    value: 'TEXT',
    default: '',
    defaultText: 'empty (start from <|endoftext|>)',
    description: 'text to continue',
  },
  {
    name: 'max-tokens',
    kind: 'int',
    value: 'N',
    min: 1,
    default: S.maxNewTokens,
    description: 'how many tokens to generate at most',
    group: 'Sampling',
  },
  {
    name: 'temperature',
    kind: 'number',
    value: 'T',
    min: 0,
    default: S.temperature,
    description: 'randomness: 0 = greedy (always the likeliest token), higher = more varied',
    group: 'Sampling',
  },
  {
    name: 'top-k',
    kind: 'int',
    value: 'K',
    min: 0,
    default: S.topK,
    description: 'sample only among the K likeliest tokens (0 = no limit)',
    group: 'Sampling',
  },
  {
    name: 'top-p',
    kind: 'number',
    value: 'P',
    above: 0,
    max: 1,
    default: S.topP,
    description: 'nucleus sampling: the fewest tokens whose probability adds up to P (1 = off)',
    group: 'Sampling',
  },
  {
    name: 'repetition-penalty',
    kind: 'number',
    value: 'R',
    above: 0,
    default: S.repetitionPenalty,
    description: 'above 1 discourages tokens already in the text (1 = off)',
    group: 'Sampling',
  },
  {
    name: 'stop',
    kind: 'strings',
    value: 'TEXT',
    description:
      'stop before this text appears (the stop text is not printed; \\n a new line, \\t a tab, \\\\ a backslash)',
    group: 'Sampling',
  },
  {
    name: 'seed',
    kind: 'int',
    value: 'N',
    default: S.seed,
    description: 'random seed: the same seed and options give the same text',
    group: 'Sampling',
  },
  {
    name: 'no-cache',
    kind: 'boolean',
    description: 'recompute the whole context for every token instead of using the KV cache',
    group: 'Sampling',
  },
];

async function run(ctx: Context): Promise<number> {
  const { args, out } = ctx;
  const prompt = args.string('prompt') ?? '';
  const sampling: Partial<SamplingOptions> = {
    maxNewTokens: args.number('max-tokens')!,
    temperature: args.number('temperature')!,
    topK: args.number('top-k')!,
    topP: args.number('top-p')!,
    repetitionPenalty: args.number('repetition-penalty')!,
    stop: args.list('stop').map(unescapeField),
    seed: args.number('seed')!,
    useCache: !args.flag('no-cache'),
  };
  await startBackend(ctx);
  const { generateTokens } = await import('../../engine/generate');
  const loadStarted = performance.now();
  const { refuseMaskedLmDir } = await import('../../engine/checkpoint/objective');
  await refuseMaskedLmDir(args.requireString('model'));
  const { model, tokenizer, weights } = await loadModel(
    args.requireString('model'),
    args.string('weights') as WeightsChoice,
  );
  const promptIds = encodeOption(tokenizer, prompt, '--prompt');
  const loadSeconds = (performance.now() - loadStarted) / 1000;
  if (out.json) out.emit({ type: 'weights', ...weights, loadSeconds });
  else out.note(out.dim(`[${describeWeights(weights)}; loaded in ${loadSeconds.toFixed(1)} s]`));

  const interrupt = onInterrupt(out, 'stopping generation');
  const started = performance.now();
  try {
    // On a terminal the prompt is shown (in bold) before its continuation; piped, only the
    // continuation is written.
    const shown = !out.json && out.tty ? prompt : '';
    if (shown) out.write(out.bold(shown));
    const it = generateTokens(model, tokenizer, promptIds, sampling, interrupt.signal);
    for (;;) {
      const r = await it.next();
      if (r.done) {
        const result = r.value;
        const seconds = (performance.now() - started) / 1000;
        if (out.json) {
          out.emit({
            type: 'result',
            text: result.text,
            ids: result.ids,
            stoppedBy: result.stoppedBy,
          });
        } else {
          if (!(shown + result.text).endsWith('\n')) out.write('\n');
          const n = result.ids.length;
          out.note(
            out.dim(
              `[${n} token${n === 1 ? '' : 's'} in ${seconds.toFixed(1)} s, ` +
                `${formatCount(n / Math.max(seconds, 1e-9))} tok/s; stopped by ${result.stoppedBy}]`,
            ),
          );
        }
        return result.stoppedBy === 'cancelled' ? EXIT.interrupted : EXIT.ok;
      }
      const tok = r.value;
      if (out.json) out.emit({ type: 'token', id: tok.id, text: tok.text, logprob: tok.logprob });
      else out.write(tok.text);
    }
  } finally {
    interrupt.dispose();
    model.dispose();
  }
}

export const command: Command = {
  command: 'generate',
  summary: 'continue a prompt with a trained model, streaming the text',
  usage: '--model DIR [--prompt TEXT] [options]',
  description:
    'Generates text after --prompt with a model folder (a run directory, or any Hugging Face ' +
    'GPT-2 folder with model.safetensors). Text streams to stdout as tokens arrive; with --json ' +
    'each token is a {"type":"token","id","text","logprob"} line and the last line is ' +
    '{"type":"result","text","ids","stoppedBy"}.',
  options: OPTIONS,
  notes: ['Ctrl-C stops generating and prints what was made (exit code 130).'],
  examples: [
    'generate --model runs/austen --prompt "It is a truth" --max-tokens 300',
    'generate --model runs/austen --prompt "Emma" --temperature 0 --stop "\\n\\n"',
  ],
  run,
};
