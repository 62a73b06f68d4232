import { describe, expect, it } from 'vitest';
import { collapseBlankLines, safeFileName, uniqueFileName } from '../../src/common/text';

describe('collapseBlankLines', () => {
  it('turns runs of two or more blank lines into one', () => {
    expect(collapseBlankLines('a\n\n\nb')).toBe('a\n\nb');
    expect(collapseBlankLines('a\n\n\n\n\n\nb\n\n\n\nc')).toBe('a\n\nb\n\nc');
    // lines of spaces (ideographic ones too) are blank
    expect(collapseBlankLines('床前明月光\n  \n\u3000\n\n疑是地上霜')).toBe(
      '床前明月光\n\n疑是地上霜',
    );
    expect(collapseBlankLines('a\r\n\r\n\r\nb')).toBe('a\r\n\r\nb');
  });

  it('leaves text without such runs as it is', () => {
    for (const t of ['', 'a', 'a\nb', 'a\n\nb', '  indented\n\n  too', '\n']) {
      expect(collapseBlankLines(t)).toBe(t);
    }
  });

  it('a Tang poem sample full of line breaks becomes short', () => {
    const sample = '春眠不觉晓' + '\n'.repeat(40) + '处处闻啼鸟' + '\n\n\n';
    expect(collapseBlankLines(sample)).toBe('春眠不觉晓\n\n处处闻啼鸟\n\n');
  });
});

describe('file names the user sees', () => {
  it('are kept, made safe for any disk', () => {
    expect(safeFileName('reviews 2024.csv')).toBe('reviews 2024.csv');
    expect(safeFileName('唐诗三百首.txt')).toBe('唐诗三百首.txt');
    expect(safeFileName('a:b?c*.csv')).toBe('a_b_c_.csv');
    expect(safeFileName('..hidden. ')).toBe('hidden');
    expect(safeFileName('CON.txt')).toBe('_CON.txt');
    expect(safeFileName('...', 'table')).toBe('table');
    const long = safeFileName(`${'x'.repeat(300)}.jsonl`);
    expect(long).toHaveLength(200);
    expect(long.endsWith('.jsonl')).toBe(true);
  });

  it('a clash gets " (2)", then " (3)", before the extension', () => {
    expect(uniqueFileName('data.csv', [])).toBe('data.csv');
    expect(uniqueFileName('data.csv', ['data.csv'])).toBe('data (2).csv');
    expect(uniqueFileName('Data.CSV', ['data.csv', 'data (2).csv'])).toBe('Data (3).CSV');
    expect(uniqueFileName('README', ['README'])).toBe('README (2)');
  });
});
