/**
 * The fine-tuning defaults by model size and the diagnosis of a finished fine-tune's curve
 * (src/common/finetuneAdvice.ts), and the engine's merge of the rule with the settings given.
 */
import { describe, expect, it } from 'vitest';
import {
  GPT1_LR,
  SMALL_MODEL_LR,
  describeDefaults,
  describeDiagnosis,
  diagnoseFinetune,
  diagnoseResult,
  finetuneDefaults,
  formatLr,
  formatParams,
  majorityRate,
} from '../../src/common/finetuneAdvice';
import { GPT1_FINETUNE } from '../../src/common/finetune';
import { settingsForSize } from '../../src/engine/finetune/finetune';

describe('finetuneDefaults: the learning rate by model size', () => {
  it("small models get the small-model rate, ~100M and up GPT-1's", () => {
    expect(finetuneDefaults(20_000)).toEqual({
      lr: 1e-3,
      epochs: 3,
      rule: 'small',
      params: 20_000,
    });
    // the bundled austen-tiny (1,334,016 parameters), where 1e-3 was measured best
    expect(finetuneDefaults(1_334_016)).toMatchObject({ lr: SMALL_MODEL_LR, rule: 'small' });
    expect(finetuneDefaults(2e6)).toMatchObject({ lr: 1e-3, rule: 'small' });
    expect(finetuneDefaults(1e8)).toMatchObject({ lr: GPT1_LR, rule: 'gpt1' });
    expect(finetuneDefaults(124_439_808)).toMatchObject({ lr: 6.25e-5, rule: 'gpt1' });
    expect(finetuneDefaults(1.5e9)).toMatchObject({ lr: 6.25e-5, rule: 'gpt1' });
  });

  it('between them: log-interpolated, falling with size, rounded to two digits', () => {
    // 10M: log(10M/2M) / log(100M/2M) = 0.41 of the way, 1e-3 · 0.0625^0.41 = 3.2e-4
    expect(finetuneDefaults(1e7)).toMatchObject({ lr: 3.2e-4, rule: 'between' });
    const sizes = [2.1e6, 3e6, 1e7, 3e7, 9e7];
    const lrs = sizes.map((n) => finetuneDefaults(n).lr);
    for (let i = 1; i < lrs.length; i++) expect(lrs[i]).toBeLessThan(lrs[i - 1]!);
    for (const lr of lrs) {
      expect(lr).toBeLessThan(SMALL_MODEL_LR);
      expect(lr).toBeGreaterThan(GPT1_LR);
      expect(Number(lr.toPrecision(2))).toBe(lr);
    }
  });

  it('says which rule picked the value', () => {
    expect(describeDefaults(finetuneDefaults(1_334_016))).toBe(
      "small model (1.33M parameters): lr 1e-3; GPT-1's 6.25e-5 is for models of about 100M parameters and up",
    );
    expect(describeDefaults(finetuneDefaults(1e7))).toBe(
      "10M parameters: lr 3.2e-4, log-interpolated between 1e-3 at 2M and GPT-1's 6.25e-5 at 100M",
    );
    expect(describeDefaults(finetuneDefaults(124_439_808))).toBe(
      "124M parameters: GPT-1's recipe, lr 6.25e-5",
    );
    expect(formatLr(8.4e-4)).toBe('8.4e-4');
    expect(formatLr(0.003)).toBe('3e-3');
    expect(formatParams(1_334_272)).toBe('1.33M');
    expect(formatParams(850_000)).toBe('850K');
  });

  it('the engine takes the rule only for what is not given', () => {
    const logs: string[] = [];
    const s = settingsForSize({ batchSize: 8 }, 1_334_272, (e) => {
      if (e.type === 'log') logs.push(e.message);
    });
    expect(s).toEqual({ ...GPT1_FINETUNE, lr: 1e-3, epochs: 3, batchSize: 8 });
    expect(logs).toEqual([
      expect.stringContaining(
        'learning rate by model size: small model (1.33M parameters): lr 1e-3',
      ),
    ]);
    logs.length = 0;
    // a rate given: nothing to say; the epochs not given are the rule's
    const given = settingsForSize({ lr: 5e-5, seed: undefined }, 1e3, (e) => {
      if (e.type === 'log') logs.push(e.message);
    });
    expect(given).toMatchObject({ lr: 5e-5, epochs: 3, seed: GPT1_FINETUNE.seed });
    expect(logs).toEqual([]);
    expect(settingsForSize({ epochs: 2 }, 1e3)).toMatchObject({ lr: 1e-3, epochs: 2 });
    expect(settingsForSize({}, 2e8).lr).toBe(6.25e-5);
  });
});

describe('diagnoseFinetune: what the validation curve says', () => {
  const small = { lr: 1e-3, epochs: 3, params: 1.33e6 };

  it('falling: accuracy fell after every epoch; a rate far below the rule is the first suspect', () => {
    const d = diagnoseFinetune({
      valAccuracy: [0.57, 0.52, 0.51],
      majority: 0.5,
      ...small,
      lr: 6.25e-5,
    });
    expect(d).toEqual({
      finding: 'falling',
      valAccuracy: [0.57, 0.52, 0.51],
      majority: 0.5,
      suggestions: [{ kind: 'raise-lr', lr: 1e-3 }, { kind: 'more-data' }],
    });
    expect(describeDiagnosis(d!)).toEqual([
      'validation accuracy fell after every epoch (57% → 52% → 51%)',
      "  try: a higher learning rate, 1e-3 (the rate for this model's size)",
      '  try: more labeled examples',
    ]);
  });

  it('falling at the rule rate: overfitting; far above it: lower the rate', () => {
    expect(
      diagnoseFinetune({ valAccuracy: [0.8, 0.75, 0.7], majority: 0.5, ...small })?.suggestions,
    ).toEqual([{ kind: 'fewer-epochs' }, { kind: 'more-data' }]);
    expect(
      diagnoseFinetune({ valAccuracy: [0.8, 0.75, 0.7], majority: 0.5, ...small, lr: 1e-2 })
        ?.suggestions,
    ).toEqual([{ kind: 'lower-lr', lr: 1e-3 }, { kind: 'fewer-epochs' }, { kind: 'more-data' }]);
  });

  it('majority: no epoch beat the commonest label by more than a point', () => {
    const d = diagnoseFinetune({ valAccuracy: [0.54, 0.55, 0.54], majority: 0.54, ...small });
    expect(d?.finding).toBe('majority');
    expect(d?.suggestions).toEqual([{ kind: 'more-epochs', epochs: 6 }, { kind: 'more-data' }]);
    expect(describeDiagnosis(d!)[0]).toBe(
      'validation accuracy stayed at the majority rate: 54% → 55% → 54%, while always answering the commonest label scores 54%',
    );
    // worse than the majority counts too, and it wins over "falling"
    expect(
      diagnoseFinetune({ valAccuracy: [0.5, 0.45, 0.4], majority: 0.54, ...small, lr: 6.25e-5 }),
    ).toMatchObject({
      finding: 'majority',
      suggestions: [{ kind: 'raise-lr', lr: 1e-3 }, { kind: 'more-epochs' }, { kind: 'more-data' }],
    });
  });

  it('no finding: a curve that rose, one fall, two epochs, or one point above the majority', () => {
    expect(diagnoseFinetune({ valAccuracy: [0.6, 0.7, 0.75], majority: 0.5, ...small })).toBeNull();
    expect(
      diagnoseFinetune({ valAccuracy: [0.65, 0.61, 0.62], majority: 0.54, ...small }),
    ).toBeNull();
    expect(diagnoseFinetune({ valAccuracy: [0.7, 0.65], majority: 0.5, ...small })).toBeNull();
    expect(
      diagnoseFinetune({ valAccuracy: [0.56, 0.56, 0.56], majority: 0.54, ...small }),
    ).toBeNull();
    expect(diagnoseFinetune({ valAccuracy: [], majority: 0.5, ...small })).toBeNull();
  });

  it('without the model size: no advice on the rate', () => {
    const d = diagnoseFinetune({
      valAccuracy: [0.5, 0.5, 0.5],
      majority: 0.5,
      lr: 1e-6,
      epochs: 3,
    });
    expect(d?.suggestions).toEqual([{ kind: 'more-epochs', epochs: 6 }, { kind: 'more-data' }]);
  });

  it("from a result: the majority rate is the validation set's commonest true label", () => {
    expect(
      majorityRate([
        [33, 21],
        [17, 29],
      ]),
    ).toBe(0.54);
    expect(
      majorityRate([
        [0, 0],
        [0, 0],
      ]),
    ).toBe(0);
    const metrics = {
      confusion: [
        [54, 0],
        [46, 0],
      ],
    } as never;
    const history = [0.54, 0.54, 0.54].map((a, i) => ({
      epoch: i + 1,
      step: 0,
      valAccuracy: a,
      valLoss: 0.7,
    }));
    expect(diagnoseResult({ history, evaluatedOn: 'val', metrics }, small)?.finding).toBe(
      'majority',
    );
    // measured on the training set (no validation set): nothing to say
    expect(diagnoseResult({ history: [], evaluatedOn: 'train', metrics }, small)).toBeNull();
  });
});
