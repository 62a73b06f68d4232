/**
 * GPT-2's reversible byte ↔ Unicode map. Byte-level BPE works on bytes, but vocab.json and
 * merges.txt store tokens as strings; printable bytes map to themselves and the rest (control
 * characters, space, …) to code points from U+0100 up, so every token is a readable string
 * without whitespace (space becomes 'Ġ', newline 'Ċ').
 */
function buildByteToUnicode(): string[] {
  const printable: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) printable.push(b); // '!'..'~'
  for (let b = 0xa1; b <= 0xac; b++) printable.push(b); // '¡'..'¬'
  for (let b = 0xae; b <= 0xff; b++) printable.push(b); // '®'..'ÿ'
  const map: string[] = new Array<string>(256);
  for (const b of printable) map[b] = String.fromCharCode(b);
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (map[b] === undefined) map[b] = String.fromCharCode(256 + n++);
  }
  return map;
}

/** byte → its one-character string. */
export const BYTE_TO_UNICODE: readonly string[] = buildByteToUnicode();

/** one-character string → byte. */
export const UNICODE_TO_BYTE: ReadonlyMap<string, number> = new Map(
  BYTE_TO_UNICODE.map((ch, b) => [ch, b]),
);

export function bytesToUnicode(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += BYTE_TO_UNICODE[b];
  return s;
}

/** The bytes of a byte-level token string, or undefined if it has a character outside the map. */
export function unicodeToBytes(token: string): Uint8Array | undefined {
  const out = new Uint8Array(token.length);
  for (let i = 0; i < token.length; i++) {
    const b = UNICODE_TO_BYTE.get(token.charAt(i));
    if (b === undefined) return undefined;
    out[i] = b;
  }
  return out;
}
