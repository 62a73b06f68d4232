/**
 * The fine-tuned baseline of in-context evaluation: a classifier fine-tuned on the same task
 * (GPT-1), scored on exactly the examples the prompts were scored on, so the chart shows how far
 * k-shot prompting is from supervised fine-tuning on the user's own data.
 */
import { loadClassifier } from '../finetune/checkpoint';
import { predictExamples } from '../finetune/predict';
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
  opts: { signal?: AbortSignal; onProgress?: (done: number, total: number) => void } = {},
): Promise<FinetunedAccuracy> {
  const c = await loadClassifier(dir);
  try {
    if (c.task !== 'classification') {
      throw new Error(
        `${dir}: a ${c.task} model; in-context evaluation compares with a classification model`,
      );
    }
    const index = new Map(c.labels.map((l, i) => [l, i]));
    const missing = [...new Set(examples.map((e) => e.label))].filter((l) => !index.has(l));
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
 * The baseline beside an in-context evaluation of `examples` with these labels, seed and limit:
 * the classifier in `dir` scored on the same evaluated examples.
 */
export async function finetunedBaseline(
  dir: string,
  icl: { examples: LabeledExample[]; labels: LabelWord[]; seed: number; limit: number },
  opts: { signal?: AbortSignal } = {},
): Promise<{ model: string; accuracy: number; n: number }> {
  const { evalSet } = evaluationSplit(icl.examples, icl.labels, icl.seed, icl.limit);
  const f = await finetunedAccuracy(dir, evalSet, opts);
  return { model: f.model, accuracy: f.accuracy, n: f.n };
}
