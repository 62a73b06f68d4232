/** `dataset import|list`: the app's dataset library from the command line. */
import * as path from 'node:path';
import { importDataset, listDatasets } from '../../engine/data/dataset';
import type { OptionSpec } from '../args';
import { formatCount } from '../output';
import { EXIT, onInterrupt, type Command, type Context } from '../runtime';

const WORKSPACE: OptionSpec = {
  name: 'workspace',
  kind: 'string',
  value: 'DIR',
  default: './workspace',
  description: "the app's workspace (datasets live in DIR/datasets)",
};

const mib = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;

async function runImport(ctx: Context): Promise<number> {
  const { args, out } = ctx;
  const root = path.join(path.resolve(args.string('workspace')!), 'datasets');
  const interrupt = onInterrupt(out, 'stopping the import');
  try {
    const field = args.string('field');
    const name = args.string('name');
    const { manifest: m, duplicate } = await importDataset({
      root,
      paths: args.list('files'),
      ...(field ? { field } : {}),
      ...(name ? { name } : {}),
      signal: interrupt.signal,
      onProgress: (p) => {
        if (out.json) out.emit({ type: 'dataset.progress', ...p });
        else out.status(`importing ${p.file}: ${Math.round(p.fraction * 100)}%`);
      },
    });
    if (out.json) {
      out.emit({ type: 'result', duplicate, dir: path.join(root, m.id), dataset: m });
    } else {
      const s = m.stats;
      out.line(
        duplicate
          ? `already in the library as ${m.id} (the same content)`
          : `imported ${m.id}: ${m.files.length} file(s), ${mib(s.bytes)}`,
      );
      out.line(
        `  ${formatCount(s.chars)} characters, ${formatCount(s.lines)} lines, ` +
          `${s.uniqueChars} distinct characters, ${formatCount(s.duplicateLines)} duplicate lines`,
      );
      if (m.problemCount > 0) out.line(`  ${m.problemCount} row(s) skipped: ${m.warnings[0]}`);
      out.line(`  pretrain on it: gpt-studio pretrain --corpus ${path.join(root, m.id)} --out ...`);
    }
    return EXIT.ok;
  } finally {
    interrupt.dispose();
  }
}

async function runList(ctx: Context): Promise<number> {
  const { args, out } = ctx;
  const root = path.join(path.resolve(args.string('workspace')!), 'datasets');
  const list = await listDatasets(root);
  if (out.json) {
    out.emit({
      type: 'result',
      datasets: list.map(({ stats: { preview: _p, ...s }, ...m }) => ({ ...m, stats: s })),
    });
    return EXIT.ok;
  }
  if (list.length === 0) out.line(`no datasets in ${root}`);
  for (const m of list) {
    out.line(
      `${m.id.padEnd(32)} ${mib(m.stats.bytes).padStart(10)}  ${formatCount(m.stats.chars).padStart(7)} chars  ` +
        `${m.createdAt.slice(0, 10)}  ${m.name}`,
    );
  }
  return EXIT.ok;
}

export const subcommands: Record<string, Command> = {
  import: {
    command: 'dataset import',
    summary: 'import text or table files into the dataset library',
    usage: '--files FILE|DIR... [--field NAME] [--name NAME] [--workspace DIR] [options]',
    description:
      'Reads .txt/.md (any encoding), .jsonl/.json (one field) and .csv/.tsv (one column), streamed, ' +
      'into normalized UTF-8 text with statistics. The same content imported again is recognized ' +
      'by its sha256.',
    options: [
      {
        name: 'files',
        kind: 'strings',
        variadic: true,
        value: 'FILE|DIR',
        required: true,
        description: 'files, or folders walked for .txt .md .jsonl .csv .tsv .json',
      },
      {
        name: 'field',
        kind: 'string',
        value: 'NAME',
        description: 'the JSON field or CSV/TSV column that holds the text',
      },
      { name: 'name', kind: 'string', value: 'NAME', description: 'the dataset name' },
      WORKSPACE,
    ],
    examples: [
      'dataset import --files books/',
      'dataset import --files reviews.jsonl --field text --name reviews',
    ],
    run: runImport,
  },
  list: {
    command: 'dataset list',
    summary: 'the datasets in the library',
    usage: '[--workspace DIR] [options]',
    description: 'Lists the datasets of a workspace, newest first.',
    options: [WORKSPACE],
    examples: ['dataset list --workspace ./workspace'],
    run: runList,
  },
};
