/** `resume`: continue a pretraining run from its last checkpoint. */
import type { OptionSpec } from '../args';
import { startBackend, type Command, type Context } from '../runtime';
import { LOG_EVERY, runTraining } from './pretrain';

const OPTIONS: OptionSpec[] = [
  {
    name: 'run',
    kind: 'string',
    value: 'RUN_DIR',
    required: true,
    description: 'the run directory `pretrain --out` created',
  },
  {
    name: 'steps',
    kind: 'int',
    value: 'N',
    min: 1,
    defaultText: "the run's own --steps",
    description: 'new total number of steps (counted from the start of the run, not from now)',
  },
  LOG_EVERY,
];

async function run(ctx: Context): Promise<number> {
  const { args } = ctx;
  const runDir = args.requireString('run');
  const steps = args.number('steps');
  const { readState, resume } = await import('../../engine/train/pretrain');
  // Read first: a wrong folder is reported before the backend loads.
  const state = await readState(runDir);
  await startBackend(ctx);
  return runTraining(
    ctx,
    { evalEvery: state.train.evalEvery, valLoss: state.valLoss },
    (onEvent, signal) =>
      resume({ run: runDir, ...(steps !== undefined ? { steps } : {}), onEvent, signal }),
  );
}

export const command: Command = {
  command: 'resume',
  summary: 'continue a pretraining run from its last checkpoint',
  usage: '--run RUN_DIR [--steps N] [options]',
  description:
    'Continues a run exactly where its last checkpoint left it (model, optimizer, data order, ' +
    'learning-rate schedule). --steps raises (or lowers) the run’s total.',
  options: OPTIONS,
  notes: ['Ctrl-C stops after the current step and saves the run (exit code 130).'],
  examples: ['resume --run runs/austen --steps 4000'],
  run,
};
