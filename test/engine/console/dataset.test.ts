import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readLabeled } from '../../../src/engine/console/dataset';

let dir: string;
beforeEach(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'gpt-studio-labeled-'));
});
afterEach(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});
const write = async (name: string, content: string) => {
  const p = path.join(dir, name);
  await fs.writeFile(p, content);
  return p;
};

describe('readLabeled reads only regular files, within the caps', () => {
  it('reads a labeled CSV', async () => {
    const f = await write('l.csv', 'text,label\n"good, really",pos\nbad,neg\n');
    const t = await readLabeled(f);
    // each with its row (the line its record starts on), so a fine-tune's rows can be matched
    expect(t.examples).toEqual([
      { input: 'good, really', label: 'pos', row: 2 },
      { input: 'bad', label: 'neg', row: 3 },
    ]);
  });

  it.skipIf(process.platform === 'win32')('refuses a FIFO by name without blocking', async () => {
    const fifo = path.join(dir, 'labels.jsonl');
    execFileSync('mkfifo', [fifo]);
    await expect(readLabeled(fifo)).rejects.toThrow(
      `${fifo} is a FIFO (named pipe), not a regular file`,
    );
  });

  it('refuses an unclosed quote at the cap, naming the file and line', async () => {
    const f = await write('l.csv', 'text,label\nok,pos\n"open,neg\n' + 'x'.repeat(5000));
    await expect(readLabeled(f, { maxRecord: 4096 })).rejects.toThrow(
      'l.csv: line 3: a quoted field runs past 4 KiB (an unclosed quote?)',
    );
  });

  it('a deeply nested JSONL line is a problem with its line; the rest is read', async () => {
    const deep = '['.repeat(20_000) + ']'.repeat(20_000);
    const f = await write('d.jsonl', `{"text":"a","label":"x"}\n{"text":${deep},"label":"y"}\n`);
    const t = await readLabeled(f);
    expect(t.examples).toEqual([{ input: 'a', label: 'x', row: 1 }]);
    expect(t.problems.map((p) => p.message)).toEqual([
      'd.jsonl row 2: JSON nested deeper than 1000 levels',
    ]);
  });
});
