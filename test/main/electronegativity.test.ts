/**
 * Electronegativity (Doyensec's Electron security scanner) on src: no medium, high or critical
 * finding. A deliberately insecure fixture is scanned too, to show that the scan and the reading
 * of its report really find things.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const require = createRequire(import.meta.url);
const CLI = path.join(
  path.dirname(require.resolve('@doyensec/electronegativity/package.json')),
  'dist/index.js',
);
const OFFLINE = path.join(ROOT, 'test/main/fixtures/offline-got.cjs');
const ELECTRON_VERSION = (require('electron/package.json') as { version: string }).version;
const tmp = mkdtempSync(path.join(tmpdir(), 'electronegativity-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

interface Finding {
  issue: string;
  severity: string;
  file: string;
  location: string;
}

const ANSI = new RegExp(String.fromCharCode(27) + '\\[[0-9;]*m', 'g');

/**
 * Reads the findings from the table electronegativity prints: a row "│ CHECK_ID │ file │ l:c │"
 * followed by a row "│ SEVERITY | CONFIDENCE │". (Its CSV output is not used: the tool writes the
 * CSV's header and body with two racing writes, so the header can overwrite the first rows.)
 */
function parseTable(stdout: string): Finding[] {
  const lines = stdout.replace(ANSI, '').split('\n');
  const out: Finding[] = [];
  for (let i = 0; i + 1 < lines.length; i++) {
    const row = /^│\s*([A-Z0-9_]+)\s*│\s*(.*?)\s*│\s*(\S+)\s*│/.exec(lines[i]!);
    const sev = /^│\s*(INFORMATIONAL|LOW|MEDIUM|HIGH|CRITICAL)\s*\|/.exec(lines[i + 1]!);
    if (row && sev) {
      out.push({ issue: row[1]!, file: row[2]!, location: row[3]!, severity: sev[1]! });
    }
  }
  return out;
}

async function scan(input: string): Promise<{ findings: Finding[]; log: string }> {
  const stdout = await new Promise<string>((resolve, reject) => {
    execFile(
      process.execPath,
      ['-r', OFFLINE, CLI, '-i', input, '-r', '-v', 'false', '-e', ELECTRON_VERSION],
      { cwd: ROOT, timeout: 120_000, maxBuffer: 16 * 1024 * 1024 },
      (err, out, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(out)),
    );
  });
  const log = stdout.replace(ANSI, '');
  expect(log).toMatch(/check\(s\) successfully loaded/);
  return { findings: parseTable(stdout), log };
}

const serious = (f: Finding) => ['MEDIUM', 'HIGH', 'CRITICAL'].includes(f.severity);

describe('electronegativity', () => {
  it(
    'finds no medium or high issue in src (and does find them in an insecure app)',
    { timeout: 240_000 },
    async () => {
      const bad = path.join(tmp, 'insecure');
      mkdirSync(bad);
      writeFileSync(
        path.join(bad, 'main.js'),
        "const { BrowserWindow } = require('electron');\n" +
          'new BrowserWindow({ webPreferences: { nodeIntegration: true, contextIsolation: false } });\n',
      );
      const [theirs, ours] = await Promise.all([scan(bad), scan(path.join(ROOT, 'src'))]);
      expect(
        theirs.findings.filter(serious).map((f) => f.issue),
        theirs.log,
      ).toContain('CONTEXT_ISOLATION_JS_CHECK');
      expect(ours.findings.filter(serious), ours.log).toEqual([]);
    },
  );
});
