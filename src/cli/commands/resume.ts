/** `resume`: continue a pretraining run from its last checkpoint. */
import { UsageError, type OptionSpec } from '../args';
import { startBackend, type Command, type Context } from '../runtime';
import { LOG_EVERY, runTraining, WORKERS_SPEC } from './pretrain';

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
  {
    name: 'more',
    kind: 'int',
    value: 'N',
    min: 1,
    description: 'train N steps more than where the run stopped (instead of --steps)',
  },
  { ...WORKERS_SPEC, defaultText: "the run's own" },
  LOG_EVERY,
];

async function run(ctx: Context): Promise<number> {
  const { args } = ctx;
  const runDir = args.requireString('run');
  const given = { steps: args.number('steps'), more: args.number('more') };
  if (given.steps !== undefined && given.more !== undefined) {
    throw new UsageError(
      'give --steps N (the new total) or --more N (steps to add), not both',
      'resume',
    );
  }
  const { readState, resume } = await import('../../engine/train/pretrain');
  // Read first: a wrong folder or step count is reported before the backend loads.
  const state = await readState(runDir);
  const steps = totalSteps(runDir, await stoppedAt(runDir, state.step), given);
  await startBackend(ctx);
  return runTraining(
    ctx,
    { evalEvery: state.train.evalEvery, valLoss: state.valLoss },
    (onEvent, signal) =>
      resume({
        run: runDir,
        ...(steps !== undefined ? { steps } : {}),
        ...(args.number('workers') !== undefined ? { workers: args.number('workers') } : {}),
        onEvent,
        signal,
      }),
  );
}

/** The step training continues from: the newest checkpoint's (the one resume loads). */
async function stoppedAt(runDir: string, stateStep: number): Promise<number> {
  const { listCheckpoints } = await import('../../engine/train/runDir');
  const [latest] = await listCheckpoints(runDir);
  return latest?.step ?? stateStep;
}

/** The run's new total from --steps (already a total) or --more (added to where it stopped). */
function totalSteps(
  runDir: string,
  at: number,
  given: { steps: number | undefined; more: number | undefined },
): number | undefined {
  if (given.more !== undefined) return at + given.more;
  if (given.steps !== undefined && given.steps <= at) {
    throw new UsageError(
      `${runDir}: the run is at step ${at}; --steps is the total: use --steps ` +
        `${at + given.steps} (> ${at}) or --more ${given.steps}`,
      'resume',
    );
  }
  return given.steps;
}

export const command: Command = {
  command: 'resume',
  summary: 'continue a pretraining run from its last checkpoint',
  usage: '--run RUN_DIR [--more N | --steps N] [options]',
  description:
    'Continues a run exactly where its last checkpoint left it (model, optimizer, data order, ' +
    'learning-rate schedule). --more N trains N steps past that checkpoint; --steps N sets the ' +
    'run’s total instead (counted from its start). Without either, it finishes the run’s own total.',
  options: OPTIONS,
  notes: ['Ctrl-C stops after the current step and saves the run (exit code 130).'],
  examples: ['resume --run runs/austen --more 1000', 'resume --run runs/austen --steps 4000'],
  run,
};
