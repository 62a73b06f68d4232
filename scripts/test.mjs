#!/usr/bin/env node
/**
 * `npm test`: vitest beside the static checks (tsc, ESLint with the folder boundaries, Prettier,
 * svelte-check), which run in two lanes of two, one after another in each, at a lower CPU
 * priority: they fill what vitest leaves idle (its tests wait on child processes, Chromium and the
 * engine host), and whatever is left when vitest ends runs on both cores. Vitest's progress prints
 * as it goes; each check prints one line when it ends, and its whole output only when it fails.
 * Exits non-zero when any of them fails. Arguments go to vitest (`npm test -- test/cli`).
 */
import { spawn } from 'node:child_process';
import { setPriority } from 'node:os';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const bin = (name) => `${ROOT}node_modules/.bin/${name}`;

/** The checks: two lanes of about the same CPU time (~30 s each on the dev machine). */
const LANES = [
  [
    ['tsc', bin('tsc'), ['--noEmit', '-p', 'tsconfig.json']],
    ['prettier', bin('prettier'), ['--check', '.']],
  ],
  [
    ['eslint', bin('eslint'), ['.']],
    [
      'svelte-check',
      bin('svelte-check'),
      ['--tsconfig', './tsconfig.renderer.json', '--fail-on-warnings', '--output', 'human'],
    ],
  ],
];

const children = new Set();
const seconds = (t0) => ((performance.now() - t0) / 1000).toFixed(1);

function run(cmd, args, capture) {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: ROOT, stdio: capture ? 'pipe' : 'inherit' });
    children.add(child);
    // the static checks have slack beside vitest: they take the CPU vitest leaves idle
    if (capture && child.pid) {
      try {
        setPriority(child.pid, 10);
      } catch {
        // not allowed here: the checks then share the CPU evenly
      }
    }
    let out = '';
    if (capture) {
      child.stdout.on('data', (d) => (out += d));
      child.stderr.on('data', (d) => (out += d));
    }
    child.on('error', (e) => (out += `\n${e.message}`));
    child.on('close', (code, signal) => {
      children.delete(child);
      resolve({ ok: code === 0, code: code ?? signal, out });
    });
  });
}

async function staticLane(checks) {
  const failed = [];
  for (const [name, cmd, args] of checks) {
    const t0 = performance.now();
    const r = await run(cmd, args, true);
    process.stdout.write(`\n${r.ok ? '✓' : '✗'} ${name} (${seconds(t0)} s)\n`);
    if (!r.ok) failed.push({ name, out: r.out });
  }
  return failed;
}

for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    for (const c of children) c.kill(sig);
    process.exit(sig === 'SIGINT' ? 130 : 143);
  });
}

const t0 = performance.now();
const [vitest, ...lanes] = await Promise.all([
  run(bin('vitest'), ['run', ...process.argv.slice(2)], false),
  ...LANES.map(staticLane),
]);
const failed = lanes.flat();
for (const f of failed) process.stdout.write(`\n── ${f.name} failed ──\n${f.out.trimEnd()}\n`);
const bad = [...failed.map((f) => f.name), ...(vitest.ok ? [] : ['vitest'])];
process.stdout.write(
  `\nnpm test: ${bad.length ? `FAILED (${bad.join(', ')})` : 'all checks and tests passed'} in ${seconds(t0)} s\n`,
);
process.exit(bad.length ? 1 : 0);
