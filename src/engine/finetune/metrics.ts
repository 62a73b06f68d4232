/** Accuracy, per-class precision/recall/F1, macro-F1, the confusion matrix and the worst mistakes. */
import type { ClassMetrics, FinetuneMetrics, Mistake } from '../../common/finetune';
import type { Task } from './tasks';

export interface Prediction {
  row: number;
  input: string;
  label: number;
  probs: number[];
}

const argmax = (xs: readonly number[]) => xs.reduce((best, x, i) => (x > xs[best]! ? i : best), 0);

/** Of two labels, the one that means "yes" (the other reads as a negation), else the second. */
export function positiveLabel(labels: readonly string[]): number {
  const negative =
    /^(0|no|not|non|false|neg|negative|different|dissimilar|unrelated)\b|^(not|non)[\s_-]/i;
  const neg = labels.findIndex((l) => negative.test(l.trim()));
  return neg === 0 ? 1 : neg === 1 ? 0 : 1;
}

export function computeMetrics(
  preds: readonly Prediction[],
  labels: readonly string[],
  task: Task,
  maxMistakes = 10,
): FinetuneMetrics {
  const k = labels.length;
  const confusion = labels.map(() => labels.map(() => 0));
  let correct = 0;
  const mistakes: Mistake[] = [];
  for (const p of preds) {
    const y = argmax(p.probs);
    if (p.label < k && y < k) confusion[p.label]![y]! += 1;
    if (y === p.label) correct++;
    else
      mistakes.push({
        row: p.row,
        input: p.input,
        label: labels[p.label] ?? String(p.label),
        predicted: labels[y] ?? String(y),
        confidence: p.probs[y]!,
      });
  }
  const perClass: ClassMetrics[] = labels.map((label, i) => {
    const tp = confusion[i]![i]!;
    const support = confusion[i]!.reduce((a, b) => a + b, 0);
    const predicted = confusion.reduce((a, row) => a + row[i]!, 0);
    const precision = predicted ? tp / predicted : 0;
    const recall = support ? tp / support : 0;
    const f1 = precision + recall ? (2 * precision * recall) / (precision + recall) : 0;
    return { label, precision, recall, f1, support };
  });
  // macro-F1 over the classes that occur (in the truth or the predictions)
  const present = perClass.filter((c, i) => c.support > 0 || confusion.some((row) => row[i]! > 0));
  const macroF1 = present.length ? present.reduce((a, c) => a + c.f1, 0) / present.length : 0;
  const out: FinetuneMetrics = {
    n: preds.length,
    accuracy: preds.length ? correct / preds.length : 0,
    macroF1,
    labels: [...labels],
    confusion,
    perClass,
    mistakes: mistakes.sort((a, b) => b.confidence - a.confidence).slice(0, maxMistakes),
  };
  if (task === 'similarity' && k === 2) {
    const pos = positiveLabel(labels);
    out.f1 = perClass[pos]!.f1;
    out.positiveLabel = labels[pos]!;
  }
  return out;
}
