import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { jsonLines, cli } from './helpers';

describe('dataset import', () => {
  it('imports a JSONL field into the workspace library, with --json events and result', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'cli-dataset-'));
    try {
      const file = path.join(dir, 'r.jsonl');
      await fs.writeFile(file, '{"text":"good"}\n{"text":"bad"}\n{"text":"good"}\n');
      const r = await cli([
        'dataset',
        'import',
        '--files',
        file,
        '--field',
        'text',
        '--workspace',
        dir,
        '--json',
      ]);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      const lines = jsonLines(r.stdout);
      expect(lines.some((l) => l.type === 'dataset.progress')).toBe(true);
      const last = lines.at(-1) as { type: string; duplicate: boolean; dir: string };
      expect(last).toMatchObject({ type: 'result', duplicate: false });
      const shards = (await fs.readdir(last.dir)).filter((f) => f.endsWith('.txt'));
      const text = await fs.readFile(path.join(last.dir, shards[0]!), 'utf8');
      expect(text).toBe('good\nbad\ngood\n');
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});
