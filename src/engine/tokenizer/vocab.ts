/**
 * What the char and BPE tokenizers share: an id → token list whose tail holds the special tokens.
 */
import type { Tokenizer } from './types';
import { END_OF_TEXT } from './types';

export abstract class SpecialTokens implements Pick<
  Tokenizer,
  'vocabSize' | 'specialTokens' | 'eosId' | 'idToToken' | 'addSpecialTokens'
> {
  protected readonly tokens: string[];
  protected readonly specials = new Map<string, number>();

  /** `tokens`: id → token; `specials`: special token → id (each must name its own token). */
  constructor(tokens: readonly string[], specials: ReadonlyMap<string, number>) {
    this.tokens = [...tokens];
    for (const [tok, id] of specials) {
      if (this.tokens[id] !== tok) throw new Error(`special token ${tok} does not have id ${id}`);
      this.specials.set(tok, id);
    }
  }

  /** What an ordinary token equal to `tok` is called ('a character'), or null when none is. */
  protected abstract clash(tok: string): string | null;

  /** Lets a subclass index a special token it has just appended. */
  protected onSpecialAdded(_tok: string, _id: number): void {}

  /** Appends end-of-text when the vocabulary lacks it; subclasses call this once built. */
  protected ensureEndOfText(): void {
    if (!this.specials.has(END_OF_TEXT)) this.addSpecialTokens([END_OF_TEXT]);
  }

  get vocabSize(): number {
    return this.tokens.length;
  }

  get specialTokens(): ReadonlyMap<string, number> {
    return this.specials;
  }

  get eosId(): number | undefined {
    return this.specials.get(END_OF_TEXT);
  }

  idToToken(id: number): string | undefined {
    return this.tokens[id];
  }

  addSpecialTokens(tokens: readonly string[]): number[] {
    return tokens.map((tok) => {
      const existing = this.specials.get(tok);
      if (existing !== undefined) return existing;
      if (tok === '') throw new Error('a special token cannot be empty');
      const clash = this.clash(tok);
      if (clash)
        throw new Error(`cannot add special token ${JSON.stringify(tok)}: it is already ${clash}`);
      const id = this.tokens.length;
      this.tokens.push(tok);
      this.specials.set(tok, id);
      this.onSpecialAdded(tok, id);
      return id;
    });
  }
}
