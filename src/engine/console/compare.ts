/**
 * The fine-tuned baseline of in-context evaluation: a classifier fine-tuned on the same task
 * (GPT-1), scored on exactly the examples the prompts were scored on, so the chart shows how far
 * k-shot prompting is from supervised fine-tuning on the user's own data.
 */
import { classify, loadClassifier } from '../finetune/finetune';
import { abortError, type LabeledExample } from './icl';

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
    const known = new Set(c.labels);
    const missing = [...new Set(examples.map((e) => e.label))].filter((l) => !known.has(l));
    if (missing.length > 0) {
      throw new Error(
        `${dir}: its labels are ${c.labels.join(', ')}; the data also has ${missing.join(', ')}`,
      );
    }
    let correct = 0;
    for (const [i, e] of examples.entries()) {
      if (opts.signal?.aborted) throw abortError();
      const { labels, probs } = await classify(c, { text: e.input });
      let best = 0;
      for (let j = 1; j < probs.length; j++) if (probs[j]! > probs[best]!) best = j;
      if (labels[best] === e.label) correct++;
      opts.onProgress?.(i + 1, examples.length);
    }
    const n = examples.length;
    return { model: dir, accuracy: n ? correct / n : 0, correct, n };
  } finally {
    c.dispose();
  }
}
