import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadExamples } from '../../../src/engine/finetune/load';

let dir: string;
beforeEach(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'gpt-studio-load-'));
});
afterEach(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});
const opts = {
  task: 'classification' as const,
  columns: { text: 'text', label: 'label' },
};

describe('loadExamples reads only regular files', () => {
  it.skipIf(process.platform === 'win32')('refuses a FIFO by name without blocking', async () => {
    const fifo = path.join(dir, 'train.csv');
    execFileSync('mkfifo', [fifo]);
    await expect(loadExamples(fifo, opts)).rejects.toThrow(
      `${fifo} is a FIFO (named pipe), not a regular file`,
    );
  });

  it('names a missing file', async () => {
    const missing = path.join(dir, 'none.csv');
    await expect(loadExamples(missing, opts)).rejects.toThrow(`${missing}: file not found`);
  });

  it('refuses a self-referencing link by name', async () => {
    const loop = path.join(dir, 'loop.csv');
    await fs.symlink('loop.csv', loop);
    await expect(loadExamples(loop, opts)).rejects.toThrow(`${loop} is a symbolic link that loops`);
  });
});
