/**
 * Zero-shot tracking in the renderer: the wizard's fields as `pretrain.start`'s `zeroShot`, and a
 * run's logged or live points as chart series (one per set, accuracy in percent) with each set's
 * majority-label baseline.
 */
import type { ZeroShotConfig, ZeroShotPoint } from '../../common/zeroShot';

export interface ZeroShotForm {
  enabled: boolean;
  file: string;
  words: Array<{ label: string; word: string; use: boolean }>;
  template: string;
  every: number;
  limit: number;
}

/** The request's zeroShot, undefined when off, or the i18n key of what is missing. */
export function zeroShotRequest(f: ZeroShotForm): ZeroShotConfig | undefined | string {
  if (!f.enabled) return undefined;
  if (!f.file) return 'datasets.wizard.zeroShot.needTable';
  // no words read: a multiple-choice table (the engine tells), or labels standing for themselves
  const labels = f.words
    .filter((w) => w.use && w.word.trim())
    .map((w) => ({ label: w.label, word: w.word.trim() }));
  if (f.words.length > 0 && labels.length < 2) return 'datasets.wizard.zeroShot.needWords';
  const whole = (n: number, fallback: number) => (Number.isInteger(n) && n >= 1 ? n : fallback);
  return {
    sets: [
      {
        file: f.file,
        ...(labels.length ? { labels } : {}),
        ...(f.template.trim() ? { template: f.template } : {}),
      },
    ],
    every: whole(f.every, 100),
    limit: Math.min(10_000, whole(f.limit, 64)),
    seed: 1,
  };
}

/** The sets named in `points`, in order of first appearance. */
export function setNames(points: readonly ZeroShotPoint[]): string[] {
  return [...new Set(points.map((p) => p.set))];
}

/** One series per set: [step, accuracy %]. */
export function zeroShotSeries(
  points: readonly ZeroShotPoint[],
  label: (set: string) => string = (s) => s,
): Array<{ label: string; points: Array<[number, number]>; set: string }> {
  return setNames(points).map((set) => ({
    set,
    label: label(set),
    points: points
      .filter((p) => p.set === set && Number.isFinite(p.accuracy))
      .map((p) => [p.step, p.accuracy * 100] as [number, number]),
  }));
}

/** Each set's majority-label share (in %), from its latest point. */
export function majorityLines(points: readonly ZeroShotPoint[]) {
  return setNames(points).flatMap((set) => {
    const last = points.filter((p) => p.set === set).at(-1);
    return last && Number.isFinite(last.majority) ? [{ set, value: last.majority * 100 }] : [];
  });
}
