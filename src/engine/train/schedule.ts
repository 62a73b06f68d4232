/** Linear warmup to `lr`, then cosine decay to `minLr` at `steps`. */
export function learningRate(
  step: number,
  o: { lr: number; minLr: number; warmup: number; steps: number },
): number {
  if (step < o.warmup) return (o.lr * (step + 1)) / o.warmup;
  if (step >= o.steps) return o.minLr;
  const ratio = (step - o.warmup) / Math.max(1, o.steps - o.warmup);
  return o.minLr + 0.5 * (1 + Math.cos(Math.PI * ratio)) * (o.lr - o.minLr);
}
