/**
 * Character-level tokenizer: one token per Unicode code point (not per UTF-16 unit), the
 * vocabulary being the sorted code points seen in training, then special tokens.
 */
import { saveTokenizerFiles, type SaveOptions, type TokenizerData } from './hf';
import { corpusFraction, formatCount, Progress, type TrainOptions } from './progress';
import { END_OF_TEXT, type StreamDecoder, type Tokenizer } from './types';
import { SpecialTokens } from './vocab';

function describe(cp: number): string {
  const hex = `U+${cp.toString(16).toUpperCase().padStart(4, '0')}`;
  const ch = String.fromCodePoint(cp);
  const printable = /^[\p{L}\p{N}\p{P}\p{S}]$/u.test(ch);
  return printable ? `'${ch}' (${hex})` : hex;
}

export class CharTokenizer extends SpecialTokens implements Tokenizer {
  readonly kind = 'char' as const;
  private readonly ids = new Map<number, number>(); // code point → id

  /** `tokens`: id → one character or a special token; `specials`: special token → id. */
  constructor(tokens: readonly string[], specials: ReadonlyMap<string, number>) {
    super(tokens, specials);
    this.tokens.forEach((tok, id) => {
      if (this.specials.get(tok) === id) return;
      const cp = tok.codePointAt(0);
      if (cp === undefined || String.fromCodePoint(cp) !== tok) {
        throw new Error(`token ${JSON.stringify(tok)} (id ${id}) is not a single character`);
      }
      if (this.ids.has(cp)) throw new Error(`character ${describe(cp)} appears twice`);
      this.ids.set(cp, id);
    });
    this.ensureEndOfText();
  }

  protected clash(tok: string): string | null {
    const cp = tok.codePointAt(0)!;
    return String.fromCodePoint(cp) === tok && this.ids.has(cp) ? 'a character' : null;
  }

  /** Vocabulary from a set of code points: sorted, then <|endoftext|>. */
  static fromCodePoints(codePoints: Iterable<number>): CharTokenizer {
    const chars = [...new Set(codePoints)]
      .sort((a, b) => a - b)
      .map((cp) => String.fromCodePoint(cp));
    return new CharTokenizer([...chars, END_OF_TEXT], new Map([[END_OF_TEXT, chars.length]]));
  }

  static async train(
    corpus: AsyncIterable<string>,
    opts: TrainOptions = {},
  ): Promise<CharTokenizer> {
    const progress = new Progress(opts);
    const seen = new Set<number>();
    let chars = 0;
    let carry = ''; // a high surrogate whose low half is in the next chunk
    const add = (text: string, final: boolean): void => {
      let end = text.length;
      const last = text.charCodeAt(end - 1);
      if (!final && last >= 0xd800 && last <= 0xdbff) end--;
      for (let i = 0; i < end;) {
        const cp = text.codePointAt(i)!;
        seen.add(cp);
        i += cp > 0xffff ? 2 : 1;
      }
      carry = text.slice(end);
    };
    for await (const chunk of corpus) {
      add(carry + chunk, false);
      chars += chunk.length;
      progress.report('count', corpusFraction(corpus), `Read ${formatCount(chars)} characters`);
      await progress.tick();
    }
    add(carry, true);
    if (seen.size === 0) throw new Error('The corpus is empty: there is no text to train on');
    progress.report('count', 1, `Found ${seen.size} distinct characters`, true);
    return CharTokenizer.fromCodePoints(seen);
  }

  encode(text: string): number[] {
    const out: number[] = [];
    for (let i = 0; i < text.length;) {
      const cp = text.codePointAt(i)!;
      const id = this.ids.get(cp);
      if (id === undefined) {
        throw new Error(
          `Character ${describe(cp)} at index ${i} is not in this tokenizer's vocabulary ` +
            `(${this.ids.size} characters, learned from the training text)`,
        );
      }
      out.push(id);
      i += cp > 0xffff ? 2 : 1;
    }
    return out;
  }

  decode(ids: readonly number[]): string {
    let s = '';
    for (const id of ids) s += this.token(id);
    return s;
  }

  streamDecoder(): StreamDecoder {
    return { push: (id) => this.token(id), flush: () => '' };
  }

  toData(): TokenizerData {
    return { kind: 'char', tokens: [...this.tokens], merges: [], specials: new Map(this.specials) };
  }

  save(dir: string, opts?: SaveOptions): Promise<void> {
    return saveTokenizerFiles(dir, this.toData(), opts);
  }

  private token(id: number): string {
    const t = this.tokens[id];
    if (t === undefined) {
      throw new RangeError(`token id ${id} is out of range (vocab size ${this.tokens.length})`);
    }
    return t;
  }
}
