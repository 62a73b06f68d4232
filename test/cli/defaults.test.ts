import { describe, expect, it } from 'vitest';
import { DEFAULT_SAMPLING } from '../../src/engine/generate';
import { PRESETS as ENGINE_PRESETS } from '../../src/engine/model/presets';
import { DEFAULT_TRAIN } from '../../src/engine/train/pretrain';
import { PRESETS, SAMPLING_DEFAULTS, TRAIN_DEFAULTS } from '../../src/cli/defaults';

// The CLI keeps copies of the engine's defaults so --help need not load TensorFlow.js.
describe('the CLI defaults are the engine defaults', () => {
  it('training', () => {
    for (const [k, v] of Object.entries(TRAIN_DEFAULTS)) {
      expect(v, k).toBe(DEFAULT_TRAIN[k as keyof typeof DEFAULT_TRAIN]);
    }
  });

  it('sampling', () => {
    for (const [k, v] of Object.entries(SAMPLING_DEFAULTS)) {
      expect(v, k).toBe(DEFAULT_SAMPLING[k as keyof typeof DEFAULT_SAMPLING]);
    }
  });

  it('presets', () => {
    expect(PRESETS).toEqual(ENGINE_PRESETS);
  });
});
