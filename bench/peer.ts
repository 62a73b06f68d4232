/**
 * The PyTorch peer: ../shared/bench/torch_gpt.py (beside the repository in CI), run with the
 * system Python. Its figures are measured in the same bench run as ours, so ratios compare like
 * with like on a noisy machine.
 *
 *   GPT_STUDIO_TORCH_PEER   path of torch_gpt.py (default: <repo>/../shared/bench/torch_gpt.py)
 *   GPT_STUDIO_PYTHON       the interpreter (default: /usr/bin/python3, else python3 on PATH)
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';

export interface PeerInfo {
  available: boolean;
  script: string;
  python: string;
  torchVersion?: string;
  /** torch.get_num_threads() as the peer sets it (1) and the OpenBLAS setting it inherits. */
  threads?: string;
  /** Why the peer is skipped. */
  reason?: string;
}

export interface PeerResult {
  /** The peer's JSON line, as printed. */
  output: Record<string, unknown>;
  tokensPerSecond?: number;
  valLoss?: number;
  /** ru_maxrss of the Python process. */
  peakRssMB: number | null;
  wallSeconds: number;
}

export function peerScript(repoRoot: string): string {
  return (
    process.env.GPT_STUDIO_TORCH_PEER ??
    path.resolve(repoRoot, '..', 'shared', 'bench', 'torch_gpt.py')
  );
}

function pythonPath(): string {
  if (process.env.GPT_STUDIO_PYTHON) return process.env.GPT_STUDIO_PYTHON;
  return existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
}

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
  error?: Error;
}

function run(cmd: string, args: string[], timeoutMs: number): Promise<Ran> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], timeout: timeoutMs });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', (error) => resolve({ code: null, stdout, stderr, error }));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Finds the peer and checks that Python can import torch. */
export async function probePeer(repoRoot: string): Promise<PeerInfo> {
  const script = peerScript(repoRoot);
  const python = pythonPath();
  const base = { available: false, script, python };
  if (!existsSync(script)) {
    return { ...base, reason: `peer not found at ${script} (set GPT_STUDIO_TORCH_PEER)` };
  }
  const probe = await run(
    python,
    [
      '-c',
      'import os, torch; print(torch.__version__); ' +
        'print(os.environ.get("OPENBLAS_NUM_THREADS") or os.environ.get("OMP_NUM_THREADS") or "default")',
    ],
    120_000,
  );
  if (probe.error) return { ...base, reason: `cannot run ${python}: ${probe.error.message}` };
  if (probe.code !== 0) {
    const why = probe.stderr.trim().split('\n').pop() ?? `exit ${probe.code}`;
    return { ...base, reason: `${python} cannot import torch (${why})` };
  }
  const [version = '?', blas = 'default'] = probe.stdout.trim().split('\n');
  return {
    available: true,
    script,
    python,
    torchVersion: version.trim(),
    threads: `torch intra-op 1 (set by the peer), OpenBLAS threads: ${blas.trim()}`,
  };
}

/**
 * Runs torch_gpt.py with `args` and parses its JSON line. A small wrapper reports the Python
 * process's peak RSS (ru_maxrss, kB on Linux) on stderr after the script ends.
 */
export async function runPeer(
  info: PeerInfo,
  args: string[],
  timeoutMs = 30 * 60_000,
): Promise<PeerResult> {
  const wrapper = [
    'import json, resource, runpy, sys',
    'sys.argv = sys.argv[1:]',
    'try:',
    '    runpy.run_path(sys.argv[0], run_name="__main__")',
    'finally:',
    '    sys.stdout.flush()',
    '    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss',
    '    print("@@peer-rss " + json.dumps(r), file=sys.stderr)',
  ].join('\n');
  const t0 = performance.now();
  const r = await run(info.python, ['-c', wrapper, info.script, ...args], timeoutMs);
  const wallSeconds = (performance.now() - t0) / 1000;
  if (r.error) throw new Error(`peer ${args.join(' ')}: ${r.error.message}`);
  if (r.code !== 0) {
    throw new Error(
      `peer ${args.join(' ')} exited ${r.code ?? 'on a signal (timeout?)'}: ` +
        r.stderr.trim().split('\n').slice(-3).join(' | '),
    );
  }
  const line = r.stdout
    .trim()
    .split('\n')
    .reverse()
    .find((l) => l.trim().startsWith('{'));
  if (!line) throw new Error(`peer ${args.join(' ')} printed no JSON: ${r.stdout.slice(0, 200)}`);
  const output = JSON.parse(line) as Record<string, unknown>;
  const rss = /@@peer-rss (\d+)/.exec(r.stderr);
  const num = (k: string) => (typeof output[k] === 'number' ? (output[k] as number) : undefined);
  const tokensPerSecond = num('tokensPerSecond');
  const valLoss = num('valLoss');
  return {
    output,
    ...(tokensPerSecond !== undefined ? { tokensPerSecond } : {}),
    ...(valLoss !== undefined ? { valLoss } : {}),
    peakRssMB: rss ? Math.round(Number(rss[1]) / 1024) : null,
    wallSeconds: Math.round(wallSeconds * 10) / 10,
  };
}
