/**
 * gpt-studio's command line as a function: `main(argv, out)` runs one command and returns its exit
 * code, without touching process-wide state (exit, console, stdout errors); ./main.ts is the entry
 * point that does those. A thin layer over the headless engine; each command lives in ./commands/.
 */
import * as path from 'node:path';
import { formatHelp, parseCommandArgs, PROGRAM, suggest, UsageError, wantsHelp } from './args';
import { errorMessage, isAbortError, isInternalError, Output, type OutputOptions } from './output';
import type { ParsedArgs } from './args';
import { EXIT, interruptExitCode, type Command } from './runtime';

export interface Entry {
  name: string;
  summary: string;
  load: () => Promise<Command>;
}

/** Every command, in the order `help` lists them. */
export const COMMANDS: readonly Entry[] = [
  {
    name: 'pretrain',
    summary: 'train a new GPT from scratch on your text files',
    load: async () => (await import('./commands/pretrain')).command,
  },
  {
    name: 'resume',
    summary: 'continue a pretraining run from its last checkpoint',
    load: async () => (await import('./commands/resume')).command,
  },
  {
    name: 'generate',
    summary: 'continue a prompt with a trained model, streaming the text',
    load: async () => (await import('./commands/generate')).command,
  },
  {
    name: 'score',
    summary: 'log-probability of a text, or of a continuation given a prompt',
    load: async () => (await import('./commands/score')).command,
  },
  {
    name: 'eval-icl',
    summary: 'few-shot classification accuracy against the number of shots',
    load: async () => (await import('./commands/eval-icl')).command,
  },
  {
    name: 'export',
    summary: 'export a model: Hugging Face folder, GGUF file, or a folder to train on a cluster',
    load: async () => (await import('./commands/export')).command,
  },
  {
    name: 'import',
    summary: 'import a Hugging Face GPT-2 folder (gpt2, distilgpt2, your own)',
    load: async () => (await import('./commands/import')).command,
  },
  {
    name: 'pull',
    summary: 'download a GPT-2 model from the Hugging Face Hub (gpt2, distilgpt2, org/name)',
    load: async () => (await import('./commands/pull')).command,
  },
  {
    name: 'finetune',
    summary: "fine-tune a pretrained model on labeled data (GPT-1's L3 = L2 + λ·L1)",
    load: async () => (await import('./commands/finetune')).command,
  },
  {
    name: 'evaluate',
    summary: 'accuracy, macro-F1 and confusion matrix of a fine-tuned model',
    load: async () => (await import('./commands/evaluate')).command,
  },
  {
    name: 'presets',
    summary: 'the model presets: parameters and training memory',
    load: async () => (await import('./commands/presets')).command,
  },
  {
    name: 'dataset import',
    summary: 'import text or table files into the dataset library',
    load: async () => (await import('./commands/dataset')).subcommands.import!,
  },
  {
    name: 'dataset list',
    summary: 'the datasets in the library',
    load: async () => (await import('./commands/dataset')).subcommands.list!,
  },
  {
    name: 'tokenizer train',
    summary: 'train a char or BPE tokenizer on text files',
    load: async () => (await import('./commands/tokenizer')).subcommands.train!,
  },
  {
    name: 'tokenizer encode',
    summary: 'turn text into token ids',
    load: async () => (await import('./commands/tokenizer')).subcommands.encode!,
  },
  {
    name: 'tokenizer decode',
    summary: 'turn token ids back into text',
    load: async () => (await import('./commands/tokenizer')).subcommands.decode!,
  },
];

function commandList(filter?: string): string {
  const entries = COMMANDS.filter((c) => !filter || c.name.startsWith(filter + ' '));
  const w = Math.max(...entries.map((c) => c.name.length)) + 2;
  const lines = entries.map((c) => `  ${c.name.padEnd(w)}${c.summary}`);
  if (filter) {
    return [`Usage: ${PROGRAM} ${filter} <command> [options]`, '', 'Commands:', ...lines, ''].join(
      '\n',
    );
  }
  return [
    `Usage: ${PROGRAM} <command> [options]`,
    '',
    'Train and use GPT models on this machine (TensorFlow.js; no Python needed).',
    '',
    'Commands:',
    ...lines,
    `  ${'help'.padEnd(w)}list the commands, or \`help <command>\` for one command's options`,
    '',
    'Every command takes --help, --json (one JSON object per line, the result last),',
    '--backend auto|node-gpu|webgpu|node|wasm|cpu and --debug (stack traces).',
    'Exit codes: 0 done, 1 error, 2 bad usage, 130 interrupted (Ctrl-C), 143 stopped (SIGTERM).',
    '',
    `Run \`${PROGRAM} <command> --help\` for a command's options.`,
    '',
  ].join('\n');
}

/** Finds the command named by argv's first word(s); returns it with the remaining arguments. */
function resolve(argv: readonly string[]): { entry: Entry; rest: string[] } | { group: string } {
  const [first = '', second] = argv;
  const group = COMMANDS.some((c) => c.name.startsWith(first + ' '));
  if (group) {
    if (second === undefined || second.startsWith('-') || second === 'help')
      return { group: first };
    const entry = COMMANDS.find((c) => c.name === `${first} ${second}`);
    if (!entry) {
      const subs = COMMANDS.filter((c) => c.name.startsWith(first + ' ')).map(
        (c) => c.name.split(' ')[1]!,
      );
      const near = suggest(second, subs);
      throw new UsageError(
        `unknown command '${first} ${second}'${near ? ` (did you mean '${first} ${near}'?)` : ''}` +
          `; the ${first} commands are: ${subs.join(', ')}`,
      );
    }
    return { entry, rest: argv.slice(2) };
  }
  const entry = COMMANDS.find((c) => c.name === first);
  if (!entry) {
    const near = suggest(
      first,
      COMMANDS.map((c) => c.name.split(' ')[0]!),
    );
    throw new UsageError(
      `unknown command '${first}'${near ? ` (did you mean '${near}'?)` : ''}; ` +
        `run '${PROGRAM} help' for the list`,
    );
  }
  return { entry, rest: argv.slice(1) };
}

export function hasFlag(argv: readonly string[], flag: string): boolean {
  const end = argv.indexOf('--');
  return (end === -1 ? argv : argv.slice(0, end)).includes(flag);
}

export async function main(argv: readonly string[], out: Output): Promise<number> {
  const debug = hasFlag(argv, '--debug');
  let commandName: string | undefined;
  try {
    const [first] = argv;
    if (first === undefined || first === 'help' || first === '--help' || first === '-h') {
      const topic = first === 'help' ? argv.slice(1) : [];
      if (topic.length) {
        const found = resolve(topic);
        if ('group' in found) out.line(commandList(found.group));
        else out.line(formatHelp(await found.entry.load()).trimEnd());
      } else {
        out.line(commandList().trimEnd());
      }
      return EXIT.ok;
    }
    const found = resolve(argv);
    if ('group' in found) {
      const asked = argv[1] !== undefined && (wantsHelp(argv.slice(1)) || argv[1] === 'help');
      if (asked) {
        out.line(commandList(found.group).trimEnd());
        return EXIT.ok;
      }
      out.note(commandList(found.group).trimEnd());
      throw new UsageError(`'${found.group}' needs a command`, found.group);
    }
    commandName = found.entry.name;
    const command = await found.entry.load();
    if (wantsHelp(found.rest)) {
      out.line(formatHelp(command).trimEnd());
      return EXIT.ok;
    }
    const args = parseCommandArgs(command.command, command.options, found.rest);
    await sweepBeforeWriting(args, out);
    return await command.run({ args, out });
  } catch (err) {
    return reportError(err, out, debug, commandName);
  }
}

/**
 * Before a command writes into a folder (`--out`, `--run`, `--workspace`), what crashed processes
 * left there (half-written checkpoints, staged exports, imports) is removed, and said.
 */
async function sweepBeforeWriting(args: ParsedArgs, out: Output): Promise<void> {
  const dirs = ['out', 'run', 'workspace'].flatMap((name) => {
    const v = args.string(name);
    return v ? [path.resolve(v)] : [];
  });
  if (dirs.length === 0) return;
  const { describeSweep, sweepLeftovers } = await import('../engine/util/leftovers');
  // the folder itself, and its parent (where staged folders and temp checkpoints sit)
  const roots = [...new Set(dirs.flatMap((d) => [d, path.dirname(d)]))];
  const removed = await sweepLeftovers(roots, { maxDepth: 2 }).catch(() => []);
  if (removed.length > 0) out.note(describeSweep(removed));
}

function reportError(err: unknown, out: Output, debug: boolean, command?: string): number {
  out.endLive();
  if (isAbortError(err)) {
    out.note('cancelled');
    if (out.json) out.emit({ type: 'error', message: 'cancelled' });
    return EXIT.interrupted;
  }
  const usage = err instanceof UsageError;
  const message = errorMessage(err);
  out.note(`error: ${message}`);
  if (usage && !/\bhelp\b/.test(message)) {
    const cmd = err.command ?? command;
    out.note(`(see '${PROGRAM}${cmd ? ` ${cmd}` : ''} --help')`);
  }
  if (debug && err instanceof Error && err.stack) out.note(err.stack);
  else if (!usage && isInternalError(err)) {
    out.note('(this looks like a bug in gpt-studio; run again with --debug for the stack trace)');
  }
  if (out.json) out.emit({ type: 'error', message });
  return usage ? EXIT.usage : EXIT.error;
}

/**
 * What the entry point does between reading argv and exiting: runs `main` with an Output on the
 * given streams (--json picks the JSON mode), waits for the output to drain, and returns the exit
 * code the process should end with (143 instead of 130 when SIGTERM stopped the command).
 */
export async function runProgram(
  argv: readonly string[],
  streams: Pick<OutputOptions, 'stdout' | 'stderr'> = {},
): Promise<number> {
  const out = new Output({ json: hasFlag(argv, '--json'), ...streams });
  const code = await main(argv, out);
  await out.flush();
  return code === EXIT.interrupted ? interruptExitCode() : code;
}
