/** A dataset's text statistics, gathered while the text streams past. */
import type { DatasetStats } from '../../../common/datasets';

const PREVIEW_CHARS = 4000;
/** Beyond this many distinct lines, duplicates are no longer tracked (memory stays bounded). */
const MAX_TRACKED_LINES = 5_000_000;
/** Longer lines are counted but not held for the duplicate check. */
const MAX_LINE_CHARS = 1 << 20;

/** cyrb53: a fast 53-bit string hash, for spotting repeated lines without keeping them. */
function lineHash(s: string): number {
  let h1 = 0xdeadbeef;
  let h2 = 0x41c6ce57;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 2654435761);
    h2 = Math.imul(h2 ^ c, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return 4294967296 * (2097151 & h2) + (h1 >>> 0);
}

/** Statistics of a text fed in pieces: characters, lines, distinct characters, repeated lines. */
export class TextStats {
  bytes = 0;
  chars = 0;
  lines = 0;
  nonEmptyLines = 0;
  duplicateLines = 0;
  duplicatesExact = true;
  preview = '';
  private readonly bmp = new Uint8Array(0x10000);
  private readonly astral = new Set<number>();
  private readonly seen = new Set<number>();
  private carry = '';
  private longLine = false;
  private longLineEmpty = true;

  push(text: string): void {
    if (text === '') return;
    this.bytes += Buffer.byteLength(text, 'utf8');
    if (this.preview.length < PREVIEW_CHARS) this.preview += text.slice(0, PREVIEW_CHARS);
    // distinct characters: a bitmap for the BMP, a set for the rest
    const n = text.length;
    for (let i = 0; i < n; i++) {
      const c = text.charCodeAt(i);
      this.chars++;
      if (c >= 0xd800 && c <= 0xdbff && i + 1 < n) {
        const d = text.charCodeAt(i + 1);
        if (d >= 0xdc00 && d <= 0xdfff) {
          this.astral.add(((c - 0xd800) << 10) + (d - 0xdc00) + 0x10000);
          i++;
          continue;
        }
      }
      this.bmp[c] = 1;
    }
    const parts = (this.carry + text).split('\n');
    this.carry = parts.pop()!;
    for (const line of parts) {
      this.line(line, this.longLine);
      this.longLine = false;
    }
    // a line without end (a file with no line breaks) is not held whole: it counts, unhashed
    if (this.carry.length > MAX_LINE_CHARS) {
      this.longLine = true;
      this.longLineEmpty &&= this.carry.trim() === '';
      this.carry = '';
    }
  }

  private line(line: string, long = false): void {
    this.lines++;
    if (long) {
      if (!this.longLineEmpty || line.trim() !== '') this.nonEmptyLines++;
      this.longLineEmpty = true;
      return;
    }
    if (line.trim() === '') return;
    this.nonEmptyLines++;
    const h = lineHash(line);
    if (this.seen.has(h)) this.duplicateLines++;
    else if (this.seen.size < MAX_TRACKED_LINES) this.seen.add(h);
    else this.duplicatesExact = false;
  }

  finish(): DatasetStats {
    if (this.carry !== '' || this.longLine) this.line(this.carry, this.longLine);
    this.carry = '';
    this.longLine = false;
    const chars: number[] = [];
    for (let c = 0; c < 0x10000; c++) if (this.bmp[c]) chars.push(c);
    chars.push(...[...this.astral].sort((a, b) => a - b));
    return {
      bytes: this.bytes,
      chars: this.chars,
      lines: this.lines,
      nonEmptyLines: this.nonEmptyLines,
      uniqueChars: chars.length,
      duplicateLines: this.duplicateLines,
      duplicatesExact: this.duplicatesExact,
      preview: this.preview.slice(0, PREVIEW_CHARS),
      charset: String.fromCodePoint(...chars.slice(0, 400)),
    };
  }
}
