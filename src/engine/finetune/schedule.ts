/** GPT-1's fine-tuning schedule: linear warmup to `lr` over `warmup` steps, then linear decay to 0 at `steps`. */
export function finetuneLearningRate(
  step: number,
  o: { lr: number; warmup: number; steps: number },
): number {
  if (step < o.warmup) return (o.lr * (step + 1)) / o.warmup;
  return (o.lr * Math.max(0, o.steps - step)) / Math.max(1, o.steps - o.warmup);
}
