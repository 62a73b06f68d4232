import { describe, expect, it } from 'vitest';
import {
  BYTE_TO_UNICODE,
  bytesToUnicode,
  UNICODE_TO_BYTE,
  unicodeToBytes,
} from '../../../src/engine/tokenizer/bytes';

describe('bytes_to_unicode', () => {
  it("is GPT-2's map", () => {
    expect(BYTE_TO_UNICODE).toHaveLength(256);
    expect(new Set(BYTE_TO_UNICODE).size).toBe(256);
    expect(BYTE_TO_UNICODE[0x20]).toBe('Ġ');
    expect(BYTE_TO_UNICODE[0x0a]).toBe('Ċ');
    expect(BYTE_TO_UNICODE[0x00]).toBe('Ā');
    expect(BYTE_TO_UNICODE[0x41]).toBe('A');
    expect(BYTE_TO_UNICODE[0xad]).toBe('Ń'); // soft hyphen: the last non-printable byte
    expect(BYTE_TO_UNICODE[0xff]).toBe('ÿ');
  });

  it('has an exact inverse', () => {
    const all = Uint8Array.from({ length: 256 }, (_, i) => i);
    const s = bytesToUnicode(all);
    expect(unicodeToBytes(s)).toEqual(all);
    for (let b = 0; b < 256; b++) expect(UNICODE_TO_BYTE.get(BYTE_TO_UNICODE[b]!)).toBe(b);
    expect(unicodeToBytes('a b')).toBeUndefined();
  });
});
