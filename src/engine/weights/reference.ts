/**
 * The float32 forward that f16/q8 numerics are measured against, run on the checkpoint as it
 * streams by at load: each parameter arrives in GPT-2's order (W_e, W_p, then block by block:
 * LN_1, c_attn, c_proj, LN_2, c_fc, c_proj, and LN_f), a slice of rows at a time, and is used at
 * once — a linear map's slice is multiplied into its output (f32_acc_rows, float32 SIMD in the
 * kernels' module), a LayerNorm, bias, GELU or the attention run when their parameters complete
 * (./../model/rowKernels.ts, as the decoder runs them). So it costs no second read of the file
 * and never holds more than one slice of float32 weights: it runs even for a model whose float32
 * weights could never be loaded. The head then streams W_e once more (head()).
 */
import type { Gpt2WeightsFile } from '../checkpoint/gpt2';
import { isPostLn, type GPTConfig } from '../model/config';
import { addRows, attendRows, biasGeluRows, layerNormRows } from '../model/rowKernels';
import { kernelHeap } from './kernels';

type Buf = 'x' | 'h' | 'qkv' | 'y' | 'a' | 'f';

export class ReferenceForward {
  private readonly heap = kernelHeap();
  private readonly n: number;
  private readonly bufs: Record<Buf, number>;
  /** One layer's keys and values [2][nHead][n][hs] for attendRows. */
  private readonly kv: Float32Array;
  private readonly scratch: Float64Array;
  /** A LayerNorm's gain, held until its bias arrives. */
  private gain: Float32Array | null = null;
  /**
   * GPT-1's post-LayerNorm layout: a block's LN_1 and LN_2 arrive before the branch they follow,
   * so they are held until that branch's residual add.
   */
  private readonly postLn: Record<'ln_1' | 'ln_2', { g: Float32Array; b: Float32Array } | null> = {
    ln_1: null,
    ln_2: null,
  };
  private stage = { at: 0, bytes: 0 };

  constructor(
    private readonly cfg: GPTConfig,
    private readonly ids: readonly number[],
  ) {
    const { nEmbd: C } = cfg;
    this.n = ids.length;
    const sizes: Record<Buf, number> = { x: C, h: C, qkv: 3 * C, y: C, a: C, f: 4 * C };
    this.bufs = Object.fromEntries(
      Object.entries(sizes).map(([b, w]) => [b, this.heap.alloc(this.n * w * 4)]),
    ) as Record<Buf, number>;
    this.view('x').fill(0);
    this.kv = new Float32Array(2 * this.n * C);
    this.scratch = new Float64Array(this.n);
  }

  private view(b: Buf): Float32Array {
    const width = { x: 1, h: 1, qkv: 3, y: 1, a: 1, f: 4 }[b] * this.cfg.nEmbd;
    return this.heap.f32(this.bufs[b], this.n * width);
  }

  /**
   * The next slice of a parameter: `values` (float32, rows first … of its leading axis), also at
   * `at` in the kernel memory when it is a linear map's weight (null for the small ones).
   */
  take(name: string, values: Float32Array, at: number | null, first: number): void {
    const { nEmbd: C, nHead, layerNormEpsilon: eps, activation } = this.cfg;
    const n = this.n;
    if (name === 'wte.weight' || name === 'wpe.weight') {
      const rows = values.length / C;
      const x = this.view('x');
      this.ids.forEach((id, t) => {
        const row = name === 'wte.weight' ? id : t;
        if (row < first || row >= first + rows) return;
        for (let i = 0; i < C; i++) x[t * C + i] = x[t * C + i]! + values[(row - first) * C + i]!;
      });
      return;
    }
    const m = /^(?:h\.\d+\.)?(.+)$/.exec(name)![1]!;
    switch (m) {
      case 'ln_1.weight':
      case 'ln_2.weight':
      case 'ln_f.weight':
        this.gain = Float32Array.from(values);
        return;
      case 'ln_1.bias':
      case 'ln_2.bias':
        if (isPostLn(this.cfg))
          return this.holdLayerNorm(m === 'ln_1.bias' ? 'ln_1' : 'ln_2', values);
        layerNormRows(this.view('x'), this.view('h'), n, C, this.gain!, values, eps);
        return;
      case 'ln_f.bias':
        layerNormRows(this.view('x'), this.view('h'), n, C, this.gain!, values, eps);
        return;
      case 'attn.c_attn.weight':
        return this.accumulate('h', C, at!, values.length / (3 * C), 3 * C, 'qkv', first);
      case 'attn.c_proj.weight':
        return this.accumulate('y', C, at!, values.length / C, C, 'a', first);
      case 'mlp.c_fc.weight':
        return this.accumulate('h', C, at!, values.length / (4 * C), 4 * C, 'f', first);
      case 'mlp.c_proj.weight':
        return this.accumulate('f', 4 * C, at!, values.length / C, C, 'a', first);
      case 'attn.c_attn.bias':
        return this.attend(values);
      case 'attn.c_proj.bias':
      case 'mlp.c_proj.bias':
        addRows(this.view('x'), this.view('a'), values, n, C);
        if (isPostLn(this.cfg)) this.applyLayerNorm(m === 'attn.c_proj.bias' ? 'ln_1' : 'ln_2');
        return;
      case 'mlp.c_fc.bias':
        biasGeluRows(this.view('f'), n, 4 * C, values, activation);
        return;
      default:
        throw new Error(`reference forward: unexpected parameter ${name} (${nHead} heads)`);
    }
  }

  /** GPT-1: keeps a LayerNorm for after its branch; the branch reads the stream x itself. */
  private holdLayerNorm(which: 'ln_1' | 'ln_2', bias: Float32Array): void {
    this.postLn[which] = { g: this.gain!, b: Float32Array.from(bias) };
    this.view('h').set(this.view('x'));
  }

  /** GPT-1: x = LN(x) after a branch's residual add, and h = x for what reads it next. */
  private applyLayerNorm(which: 'ln_1' | 'ln_2'): void {
    const { nEmbd: C, layerNormEpsilon: eps } = this.cfg;
    const ln = this.postLn[which]!;
    const x = this.view('x');
    layerNormRows(x, x, this.n, C, ln.g, ln.b, eps);
    this.view('h').set(x);
  }

  /** out += in[:, first … first+kc) · W slice [kc][width] (zeroed at the first slice). */
  private accumulate(
    input: Buf,
    k: number,
    at: number,
    kc: number,
    width: number,
    out: Buf,
    first: number,
  ) {
    if (first === 0) this.view(out).fill(0);
    this.heap.fn.f32_acc_rows(
      this.bufs[input] + first * 4,
      this.n,
      k,
      at,
      kc,
      width,
      this.bufs[out],
    );
  }

  /** qkv += b; y = causal attention of the n positions. */
  private attend(bias: Float32Array): void {
    const { nEmbd: C, nHead } = this.cfg;
    const n = this.n;
    const hs = C / nHead;
    const qkv = this.view('qkv');
    for (let r = 0; r < n; r++) {
      for (let i = 0; i < 3 * C; i++) qkv[r * 3 * C + i] = qkv[r * 3 * C + i]! + bias[i]!;
      for (let h = 0; h < nHead; h++) {
        for (let d = 0; d < hs; d++) {
          this.kv[h * n * hs + r * hs + d] = qkv[r * 3 * C + C + h * hs + d]!;
          this.kv[C * n + h * n * hs + r * hs + d] = qkv[r * 3 * C + 2 * C + h * hs + d]!;
        }
      }
    }
    attendRows(qkv, 0, 3 * C, this.kv, 0, C * n, this.view('y'), n, 0, nHead, hs, n, this.scratch);
  }

  /**
   * log P(ids[t+1] | ids[0…t]) from the final hidden states (after ln_f has been taken, or
   * GPT-1's last block's LN_2): W_e
   * streams from the file once more, its logits a slice of the vocabulary at a time.
   */
  async logprobs(f: Gpt2WeightsFile): Promise<Float64Array> {
    const { nEmbd: C } = this.cfg;
    const n = this.n;
    const max = new Float64Array(n).fill(-Infinity);
    const sum = new Float64Array(n);
    const target = new Float64Array(n);
    let out = 0;
    try {
      await f.reader.forEachRows(f.found.get('wte.weight')!, (rows, first) => {
        const r = rows.length / C;
        const at = this.staged(rows);
        if (!out) out = this.heap.alloc(n * r * 4); // the first slice is the largest
        this.heap.fn.f32_dot_rows(this.bufs.h, n, C, at, r, out);
        const logits = this.heap.f32(out, n * r);
        for (let i = 0; i < n; i++) {
          const row = logits.subarray(i * r, (i + 1) * r);
          let m = max[i]!;
          for (const v of row) if (v > m) m = v;
          let s = sum[i]! * Math.exp(max[i]! - m);
          for (const v of row) s += Math.exp(v - m);
          max[i] = m;
          sum[i] = s;
          const want = this.ids[i + 1];
          if (want !== undefined && want >= first && want < first + r)
            target[i] = row[want - first]!;
        }
      });
    } finally {
      if (out) this.heap.release(out);
    }
    return Float64Array.from({ length: n - 1 }, (_, i) => target[i]! - max[i]! - Math.log(sum[i]!));
  }

  /** `values` copied into a staging buffer of the kernel memory (grown as needed). */
  private staged(values: Float32Array): number {
    if (this.stage.bytes < values.byteLength) {
      if (this.stage.at) this.heap.release(this.stage.at);
      this.stage = { at: this.heap.alloc(values.byteLength), bytes: values.byteLength };
    }
    this.heap.f32(this.stage.at, values.length).set(values);
    return this.stage.at;
  }

  dispose(): void {
    for (const at of Object.values(this.bufs)) this.heap.release(at);
    if (this.stage.at) this.heap.release(this.stage.at);
    this.stage = { at: 0, bytes: 0 };
  }
}
