import { describe, expect, it } from 'vitest';
import { jsonLines, last, cli } from './helpers';

describe('presets', () => {
  it("lists each preset's parameters and memory, checked against the backend's limit", async () => {
    const r = await cli(['presets', '--json', '--backend', 'wasm', '--vocab-size', '40478']);
    expect(r.code).toBe(0);
    const result = last(jsonLines(r.stdout)) as {
      memoryLimitBytes: number;
      presets: Array<{ name: string; params: number; memoryBytes: number; fits: boolean }>;
    };
    expect(result.presets.map((p) => p.name)).toEqual(['tiny', 'small', 'gpt1']);
    const gpt1 = result.presets.find((p) => p.name === 'gpt1')!;
    // GPT-1: 12 × 768, 12 heads, context 512, 40478 BPE tokens ≈ 117M parameters
    expect(gpt1.params).toBeGreaterThan(115e6);
    expect(gpt1.params).toBeLessThan(118e6);
    expect(result.memoryLimitBytes).toBe(4 * 2 ** 30);
    expect(gpt1.fits).toBe(false);
    expect(result.presets.find((p) => p.name === 'tiny')!.params).toBeLessThan(7e6);
    // GPT-1's own layout: post-LayerNorm, no final LayerNorm (so 2·768 fewer parameters)
    const layouts = Object.fromEntries(
      result.presets.map((p) => [p.name, (p as { layout?: string }).layout]),
    );
    expect(layouts).toEqual({ tiny: 'gpt2', small: 'gpt2', gpt1: 'gpt1' });
    expect(gpt1.params).toBe(40478 * 768 + 512 * 768 + 12 * (12 * 768 * 768 + 13 * 768));
  });
});
