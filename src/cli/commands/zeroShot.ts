/** `pretrain --zero-shot …`: the labelled sets a run scores zero-shot every N steps. */
import { unescapeField } from '../../common/escapes';
import { ZERO_SHOT_DEFAULTS, type ZeroShotConfig } from '../../common/zeroShot';
import { parseLabelWords } from '../../engine/console/icl';
import { UsageError, type OptionSpec, type ParsedArgs } from '../args';

const GROUP = 'Zero-shot tracking';

export const ZERO_SHOT_OPTIONS: OptionSpec[] = [
  {
    name: 'zero-shot',
    kind: 'strings',
    value: 'FILE',
    description:
      'a labelled table (.jsonl, .csv, .tsv, .json) scored zero-shot every N steps, as eval-icl ' +
      'does with no shots; repeat it or separate files by commas; a table with context, answers ' +
      'and label fields is multiple choice, scored by answer likelihood',
    group: GROUP,
  },
  {
    name: 'zero-shot-labels',
    kind: 'strings',
    value: 'MAP',
    defaultText: 'each label stands for itself',
    description:
      'each label and its word, as eval-icl --labels ("negative=bad,positive=good"); one for ' +
      'every classification set, or one per --zero-shot file in order',
    group: GROUP,
  },
  {
    name: 'zero-shot-every',
    kind: 'int',
    value: 'N',
    min: 1,
    default: ZERO_SHOT_DEFAULTS.every,
    description: 'score the sets every N steps (and before the first, and after the last)',
    group: GROUP,
  },
  {
    name: 'zero-shot-rows',
    kind: 'int',
    value: 'N',
    min: 1,
    max: 10_000,
    default: ZERO_SHOT_DEFAULTS.limit,
    description: 'rows scored per set: the same seeded subset each time',
    group: GROUP,
  },
  {
    name: 'zero-shot-template',
    kind: 'string',
    value: 'TEXT',
    default: '{input} => {output}',
    description:
      'how a classification example is written; the label word goes where {output} is ' +
      '(\\n a new line, \\t a tab)',
    group: GROUP,
  },
  {
    name: 'zero-shot-metric',
    kind: 'choice',
    value: 'sum|mean|normalized',
    choices: ['sum', 'mean', 'normalized'],
    default: 'mean',
    description: "multiple choice: the console's score that ranks the answers",
    group: GROUP,
  },
];

/** The zero-shot config the flags ask for, or undefined without --zero-shot. */
export function zeroShotConfig(args: ParsedArgs): ZeroShotConfig | undefined {
  const files = args
    .list('zero-shot')
    .flatMap((f) => f.split(','))
    .map((f) => f.trim())
    .filter((f) => f !== '');
  const maps = args.list('zero-shot-labels');
  if (files.length === 0) {
    const stray = ['zero-shot-labels', 'zero-shot-every', 'zero-shot-rows', 'zero-shot-template']
      .concat('zero-shot-metric')
      .find((n) => args.given(n));
    if (stray) throw new UsageError(`--${stray} needs --zero-shot FILE`, 'pretrain');
    return undefined;
  }
  if (maps.length > 1 && maps.length !== files.length) {
    throw new UsageError(
      `--zero-shot-labels: give one map for every set, or one per --zero-shot file ` +
        `(${files.length} files, ${maps.length} maps)`,
      'pretrain',
    );
  }
  const template = unescapeField(args.string('zero-shot-template') ?? '{input} => {output}');
  const metric = args.string('zero-shot-metric') as 'sum' | 'mean' | 'normalized';
  const sets = files.map((file, i) => {
    const map = maps.length > 1 ? maps[i] : maps[0];
    let labels;
    try {
      labels = map === undefined ? undefined : parseLabelWords(map);
    } catch (err) {
      throw new UsageError(`--zero-shot-labels for ${file}: ${(err as Error).message}`, 'pretrain');
    }
    return {
      file,
      ...(labels ? { labels } : {}),
      template,
      metric,
    };
  });
  return {
    sets,
    every: args.number('zero-shot-every')!,
    limit: args.number('zero-shot-rows')!,
    seed: ZERO_SHOT_DEFAULTS.seed,
  };
}
