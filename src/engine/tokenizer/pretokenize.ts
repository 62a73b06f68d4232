/**
 * GPT-2's pre-tokenization: text is split into "words" (contractions, letter runs, digit runs,
 * punctuation runs, whitespace) and BPE never merges across them. A leading space sticks to
 * the word that follows it. Matches are contiguous and cover the whole text.
 */
export const GPT2_SPLIT =
  /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

export function pretokenize(text: string): string[] {
  return text.match(GPT2_SPLIT) ?? [];
}

/**
 * Counts words over a text that arrives in chunks. The last two words of a chunk are held back:
 * how a word ends can depend on up to two characters after it (`'ll`, and `\s+(?!\S)` leaving
 * the last space for the next word), so only words followed by two more are final.
 */
export class WordCounter {
  readonly counts = new Map<string, number>();
  private carry = '';

  add(chunk: string): void {
    const text = this.carry + chunk;
    const words = pretokenize(text);
    const keep = words.length - 2;
    if (keep <= 0) {
      this.carry = text;
      return;
    }
    let held = 0;
    for (let i = 0; i < keep; i++) {
      const w = words[i]!;
      held += w.length;
      this.counts.set(w, (this.counts.get(w) ?? 0) + 1);
    }
    this.carry = text.slice(held);
  }

  finish(): Map<string, number> {
    for (const w of pretokenize(this.carry)) this.counts.set(w, (this.counts.get(w) ?? 0) + 1);
    this.carry = '';
    return this.counts;
  }
}
