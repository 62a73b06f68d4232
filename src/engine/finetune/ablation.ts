/** GPT-1's ablation: is the pretraining worth anything on the user's data? */
import { GPT1_FINETUNE, type AblationResult, type FinetuneSettings } from '../../common/finetune';
import { finetune, type FinetuneOptions } from './finetune';
import { readFinetuneData } from './load';

/**
 * GPT-1's central claim on the user's data: the same fine-tune from the pretrained model and from
 * random initialization, each with λ and with λ = 0 (4 runs, one after another; none saved).
 */
export async function ablation(opts: FinetuneOptions): Promise<AblationResult> {
  // the learning rate and epochs stay unset when not given: each run takes the model-size rule's
  const s: Partial<FinetuneSettings> = opts.settings ?? {};
  const lambda = s.lambda !== undefined && s.lambda > 0 ? s.lambda : GPT1_FINETUNE.lambda;
  const started = Date.now();
  const prepared =
    opts.prepared ??
    (await readFinetuneData({
      ...opts,
      valFraction: s.valFraction ?? GPT1_FINETUNE.valFraction,
      seed: s.seed ?? GPT1_FINETUNE.seed,
    }));
  const plan: Array<{ init: 'pretrained' | 'random'; lambda: number }> = [
    { init: 'pretrained', lambda },
    { init: 'pretrained', lambda: 0 },
    { init: 'random', lambda },
    { init: 'random', lambda: 0 },
  ];
  const variants: AblationResult['variants'] = [];
  for (const [index, v] of plan.entries()) {
    opts.signal?.throwIfAborted();
    const name = `${v.init} λ=${v.lambda}`;
    opts.onEvent?.({ type: 'finetune.variant', variant: name, index, count: plan.length, ...v });
    const r = await finetune({
      ...opts,
      out: undefined,
      settings: { ...s, ...v },
      variant: name,
      prepared,
    });
    if (r.outcome === 'cancelled') {
      throw Object.assign(new Error('the ablation was stopped'), { name: 'AbortError' });
    }
    variants.push({
      variant: name,
      init: v.init,
      lambda: v.lambda,
      accuracy: r.metrics.accuracy,
      macroF1: r.metrics.macroF1,
      ...(r.metrics.f1 !== undefined ? { f1: r.metrics.f1 } : {}),
      elapsedMs: r.elapsedMs,
      history: r.history,
    });
  }
  return { type: 'ablation.result', task: opts.task, elapsedMs: Date.now() - started, variants };
}
