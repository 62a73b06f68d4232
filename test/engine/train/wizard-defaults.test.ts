import { describe, expect, it } from 'vitest';
import { PRESETS } from '../../../src/engine/model/presets';
import { DEFAULT_TRAIN } from '../../../src/engine/train/pretrain';
import { MODEL_PRESETS, TRAIN_DEFAULTS } from '../../../src/renderer/lib/pretrain-defaults';

describe("the pretrain wizard's defaults", () => {
  it('are the engine defaults', () => {
    expect(TRAIN_DEFAULTS).toEqual(DEFAULT_TRAIN);
    for (const [name, p] of Object.entries(MODEL_PRESETS)) {
      expect(PRESETS[name as keyof typeof PRESETS]).toMatchObject(p);
    }
  });
});
