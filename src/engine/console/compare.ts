/**
 * The fine-tuned baseline of in-context evaluation: a classifier fine-tuned on the same task
 * (GPT-1), scored on the examples the prompts were scored on that it never trained on, so the
 * chart shows how far k-shot prompting is from supervised fine-tuning on the user's own data.
 * The fine-tune's record (finetune/trainedRows.ts) says which rows it trained on: on the same
 * bytes those rows are left out; on another file every row is unseen; without a record the
 * overlap is unknown and no number is given.
 */
import type { FinetunedBaseline } from '../../common/console';
import { loadClassifier } from '../finetune/checkpoint';
import { predictExamples } from '../finetune/predict';
import { fileSha256, inRanges, readTrainedRows, type TrainedRows } from '../finetune/trainedRows';
import { evaluationSplit, type LabelWord, type LabeledExample } from './icl';

export interface FinetunedAccuracy {
  model: string;
  accuracy: number;
  correct: number;
  n: number;
}

export async function finetunedAccuracy(
  dir: string,
  examples: readonly LabeledExample[],
  opts: {
    signal?: AbortSignal;
    onProgress?: (done: number, total: number) => void;
    /** The examples whose labels it must know (default: those scored). */
    labelsOf?: readonly LabeledExample[];
  } = {},
): Promise<FinetunedAccuracy> {
  const c = await loadClassifier(dir);
  try {
    if (c.task !== 'classification') {
      throw new Error(
        `${dir}: a ${c.task} model; in-context evaluation compares with a classification model`,
      );
    }
    const index = new Map(c.labels.map((l, i) => [l, i]));
    const labelsOf = opts.labelsOf ?? examples;
    const missing = [...new Set(labelsOf.map((e) => e.label))].filter((l) => !index.has(l));
    if (missing.length > 0) {
      throw new Error(
        `${dir}: its labels are ${c.labels.join(', ')}; the data also has ${missing.join(', ')}`,
      );
    }
    const { preds, problems } = await predictExamples(
      c,
      examples.map((e, i) => ({
        row: i + 1,
        input: { text: e.input },
        label: index.get(e.label)!,
      })),
      opts,
    );
    if (problems.length > 0) throw new Error(`${dir}: example ${problems[0]!.message}`);
    const correct = preds.filter((p) => p.probs.indexOf(Math.max(...p.probs)) === p.label).length;
    const n = examples.length;
    return { model: dir, accuracy: n ? correct / n : 0, correct, n };
  } finally {
    c.dispose();
  }
}

/**
 * The evaluated examples the classifier never saw: all of them when it trained on other bytes,
 * those outside its train split on the same bytes, none when it keeps no record (or an example
 * has no row number to check).
 */
export function heldOutExamples(
  examples: readonly LabeledExample[],
  record: TrainedRows | null,
  dataSha256: string,
): { held: LabeledExample[]; excluded: number; overlap: FinetunedBaseline['overlap'] } {
  if (!record) return { held: [], excluded: 0, overlap: 'unknown' };
  if (record.sha256 !== dataSha256)
    return { held: [...examples], excluded: 0, overlap: 'other-file' };
  if (examples.some((e) => e.row === undefined))
    return { held: [], excluded: 0, overlap: 'unknown' };
  const held = examples.filter((e) => !inRanges(record.rows, e.row!));
  return { held, excluded: examples.length - held.length, overlap: 'same-file' };
}

/**
 * The baseline beside an in-context evaluation of `examples` (read from `file`) with these
 * labels, seed and limit: the classifier in `dir` scored on the evaluated examples it never
 * trained on. `accuracy` is null when none is left or the overlap is unknown.
 */
export async function finetunedBaseline(
  dir: string,
  icl: {
    file: string;
    examples: LabeledExample[];
    labels: LabelWord[];
    seed: number;
    limit: number;
  },
  opts: { signal?: AbortSignal } = {},
): Promise<FinetunedBaseline> {
  const { evalSet } = evaluationSplit(icl.examples, icl.labels, icl.seed, icl.limit);
  const [record, sha] = await Promise.all([readTrainedRows(dir), fileSha256(icl.file)]);
  const { held, excluded, overlap } = heldOutExamples(evalSet, record, sha);
  // scored even when nothing is held out: a model of another task or labels is still refused
  const f = await finetunedAccuracy(dir, held, {
    ...opts,
    labelsOf: evalSet,
  });
  return {
    model: f.model,
    accuracy: f.n > 0 ? f.accuracy : null,
    n: f.n,
    excluded,
    overlap,
  };
}
