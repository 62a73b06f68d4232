/**
 * `npm run bench`: the engine's speed, memory and learning quality, each figure next to the
 * PyTorch peer's (llama.cpp's for GPT-2 124M inference) measured in the same run. See
 * bench/README.md.
 *
 *   npm run bench                          default cases, a table
 *   npm run bench -- --json                one JSON line per case
 *   npm run bench -- --cases train-A,learn --no-peer --backend wasm --out FILE --repeat 3
 *   npm run bench -- --all                 the default cases and `learn`
 *   npm run bench -- --profile train-A     tf.profile of one training step: top kernels
 *
 * Each case runs in a child process of its own (`node --import tsx bench/run.ts --case NAME
 * --child`), so its peak RSS is its own.
 */
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { BackendPreference } from '../src/engine/backend';
import {
  CASES,
  findCase,
  LEARN,
  profileCase,
  REPO_ROOT,
  runCase,
  writeLearnCorpus,
  type CaseSpec,
  type Check,
  type OurResult,
} from './cases';
import { LlamaCases, type LlamaPeerResult, type LlamaRow } from './llama';
import { probePeer, runPeer, type PeerInfo, type PeerResult } from './peer';

const RESULT_MARK = '@@bench-result ';
/** Dawn's start-up notices when auto mode probes webgpu: harmless, not worth echoing. */
const DAWN_NOISE = /^Warning: maxDynamic\w+ artificially reduced/;
const BACKENDS = ['auto', 'node-gpu', 'webgpu', 'node', 'wasm', 'cpu'];

interface Options {
  json: boolean;
  cases: string[];
  peer: boolean;
  backend: BackendPreference;
  out: string;
  repeat: number;
  child?: string;
  profile?: string;
  /** Data-parallel workers for the training cases (default: the physical cores on wasm/cpu). */
  workers?: number;
}

const USAGE = `usage: npm run bench -- [options]
  --cases a,b,...   cases to run (${CASES.map((c) => c.name).join(', ')});
                    default: all but learn
  --all             every case, learn included (learn takes ~10 minutes on 2 cores)
  --json            one JSON line per case on stdout (progress goes to stderr)
  --no-peer         skip the peers, PyTorch and llama.cpp (no ratios)
  --backend NAME    ${BACKENDS.join(' | ')} (default auto)
  --out FILE        where to write all results (default bench-results.json)
  --repeat N        run each case N times (ours and the peer, interleaved); report medians
  --profile CASE    tf.profile one step of train-A/B (a training step) or generate-A/B (one
                    cached token) and list the top kernels
  --workers N       data-parallel workers for train-A/B (default: the physical cores on wasm
                    and cpu, 1 elsewhere); train-A-workers measures 1 … N`;

function parseArgs(argv: string[]): Options {
  const o: Options = {
    json: false,
    cases: CASES.filter((c) => c.byDefault).map((c) => c.name),
    peer: true,
    backend: 'auto',
    out: 'bench-results.json',
    repeat: 1,
  };
  const value = (i: number, flag: string): string => {
    const v = argv[i + 1];
    if (v === undefined || v.startsWith('--')) throw new Error(`${flag} needs a value`);
    return v;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const [flag, inline] = a.includes('=')
      ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)]
      : [a, undefined];
    const take = (): string => inline ?? value(i++, flag);
    switch (flag) {
      case '--json':
        o.json = true;
        break;
      case '--cases':
        o.cases = take()
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean);
        for (const c of o.cases) findCase(c);
        break;
      case '--all':
        o.cases = CASES.map((c) => c.name);
        break;
      case '--no-peer':
        o.peer = false;
        break;
      case '--backend': {
        const b = take();
        if (!BACKENDS.includes(b))
          throw new Error(`--backend must be one of ${BACKENDS.join(', ')}`);
        o.backend = b as BackendPreference;
        break;
      }
      case '--out':
        o.out = take();
        break;
      case '--repeat':
        o.repeat = Number(take());
        if (!Number.isInteger(o.repeat) || o.repeat < 1) throw new Error('--repeat must be ≥ 1');
        break;
      case '--case':
        o.child = take();
        findCase(o.child);
        break;
      case '--child':
        break;
      case '--workers':
        o.workers = Number(take());
        if (!Number.isInteger(o.workers) || o.workers < 1) throw new Error('--workers must be ≥ 1');
        break;
      case '--profile':
        o.profile = inline ?? (argv[i + 1]?.startsWith('--') === false ? argv[++i]! : 'train-A');
        break;
      case '--help':
      case '-h':
        console.log(USAGE);
        process.exit(0);
        break;
      default:
        throw new Error(`unknown option ${a}\n${USAGE}`);
    }
  }
  return o;
}

// ---------------------------------------------------------------------------------------------
// child: one case, one process

async function childMain(o: Options): Promise<void> {
  const log = (s: string) => process.stderr.write(s + '\n');
  const result = await runCase(o.child!, {
    backend: o.backend,
    log,
    ...(o.workers !== undefined ? { workers: o.workers } : {}),
  });
  process.stdout.write(RESULT_MARK + JSON.stringify(result) + '\n');
}

/** Spawns `node --import tsx bench/run.ts --case NAME --child` and reads its result line. */
function runChild(name: string, o: Options, onLog: (line: string) => void): Promise<OurResult> {
  const self = fileURLToPath(import.meta.url);
  const args = ['--import', 'tsx', self, '--case', name, '--child', '--backend', o.backend];
  if (o.workers !== undefined) args.push('--workers', String(o.workers));
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let errTail = '';
    let pending = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => {
      const s = d.toString();
      errTail = (errTail + s).slice(-4000);
      pending += s;
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const l of lines) if (l.trim() && !DAWN_NOISE.test(l)) onLog(l);
    });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      const line = stdout.split('\n').find((l) => l.startsWith(RESULT_MARK));
      if (code === 0 && line) {
        resolve(JSON.parse(line.slice(RESULT_MARK.length)) as OurResult);
      } else {
        reject(
          new Error(
            `case ${name} failed (${signal ?? `exit ${code}`}):\n${(errTail + stdout).trim().slice(-2000)}`,
          ),
        );
      }
    });
  });
}

// ---------------------------------------------------------------------------------------------
// parent: all cases, with the peer

interface Row {
  name: string;
  backend: string;
  tokensPerSecond?: number;
  charsPerSecond?: number;
  seconds?: number;
  valLoss?: number;
  trainLoss?: number;
  /** bpe-train: the trained vocabulary's size. */
  vocabSize?: number;
  /** learn: the character vocabulary and the steps trained. */
  vocab?: number;
  steps?: number;
  /** Training cases: the data-parallel workers; train-A-workers: each count's speed. */
  workers?: number;
  scaling?: OurResult['scaling'];
  byWeights?: OurResult['byWeights'];
  peakRssMB: number;
  torch: {
    tokensPerSecond?: number;
    valLoss?: number;
    peakRssMB: number | null;
    seconds: number;
  } | null;
  /** ours / torch tokens per second (speed cases). */
  ratio: number | null;
  /** The case's headline target (ratio, seconds or val-loss tolerance; see checks). */
  target: number | null;
  /** Every check met; null when one could not be judged (no peer). */
  meetsTarget: boolean | null;
  checks: Check[];
  /** generate-124M, prefill-124M: llama.cpp's figures (ratio is ours / its 1-thread figure). */
  llama?: LlamaRow | null;
  runs?: CaseRun[];
  samplesMs?: number[];
  notes: string[];
  error?: string;
}

/** One repetition of a case: ours and the peer's. */
type CaseRun = { ours: OurResult; torch: PeerResult | null; llama?: LlamaPeerResult | null };

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const r1 = (x: number) => Math.round(x * 10) / 10;
const r3 = (x: number) => Math.round(x * 1000) / 1000;

function check(what: string, op: Check['op'], target: number, value: number | null): Check {
  const ok =
    value === null
      ? null
      : op === '>='
        ? value >= target
        : op === '<='
          ? value <= target
          : value < target;
  return { what, op, target, value, ok };
}

function summarise(
  spec: CaseSpec,
  runs: CaseRun[],
  peerNote: string | undefined,
  llamaCases?: LlamaCases,
): Row {
  const ours = runs.map((r) => r.ours);
  const first = ours[0]!;
  const med = (f: (r: OurResult) => number | undefined): number | undefined => {
    const xs = ours.map(f).filter((x): x is number => x !== undefined);
    return xs.length ? median(xs) : undefined;
  };
  const torchRuns = runs.map((r) => r.torch).filter((t): t is PeerResult => t !== null);
  const tmed = (f: (r: PeerResult) => number | undefined): number | undefined => {
    const xs = torchRuns.map(f).filter((x): x is number => x !== undefined);
    return xs.length ? median(xs) : undefined;
  };
  const tps = med((r) => r.tokensPerSecond);
  const valLoss = med((r) => r.valLoss);
  const torch = torchRuns.length
    ? {
        ...(tmed((r) => r.tokensPerSecond) !== undefined
          ? { tokensPerSecond: tmed((r) => r.tokensPerSecond)! }
          : {}),
        ...(tmed((r) => r.valLoss) !== undefined ? { valLoss: tmed((r) => r.valLoss)! } : {}),
        peakRssMB: torchRuns.some((r) => r.peakRssMB !== null)
          ? Math.max(...torchRuns.map((r) => r.peakRssMB ?? 0))
          : null,
        seconds: median(torchRuns.map((r) => r.wallSeconds)),
      }
    : null;
  const llama = spec.kind === 'llama' ? llamaCases?.summarise(spec.name, runs, tps) : undefined;
  const ratio =
    spec.kind !== 'learn' && tps !== undefined && torch?.tokensPerSecond
      ? r3(tps / torch.tokensPerSecond)
      : (llama?.ratio ?? null);
  const peak = Math.max(...ours.map((r) => r.peakRssMB));
  const checks: Check[] = [];
  let target: number | null = null;
  if (spec.ratioTarget !== undefined) {
    target = spec.ratioTarget;
    checks.push(check('ratio', '>=', spec.ratioTarget, ratio));
  }
  if (spec.memoryTargetMB !== undefined)
    checks.push(check('peakRssMB', '<=', spec.memoryTargetMB, peak));
  const seconds = med((r) => r.seconds);
  if (spec.secondsTarget !== undefined) {
    target = spec.secondsTarget;
    checks.push(check('seconds', '<', spec.secondsTarget, seconds ?? null));
  }
  if (spec.lossAgreement !== undefined) {
    target = spec.lossAgreement;
    checks.push(
      check('trainLossDiff', '<=', spec.lossAgreement, med((r) => r.trainLossDiff) ?? null),
    );
  }
  if (spec.scalingTarget !== undefined) {
    target = spec.scalingTarget;
    const two = med((r) => r.scaling?.find((x) => x.workers === 2)?.speedup);
    checks.push(check('speedup2', '>=', spec.scalingTarget, two ?? null));
  }
  if (spec.valLossTolerance !== undefined) {
    target = spec.valLossTolerance;
    const diff =
      valLoss !== undefined && torch?.valLoss !== undefined
        ? r3(Math.abs(valLoss - torch.valLoss))
        : null;
    checks.push(check('valLossDiff', '<=', spec.valLossTolerance, diff));
  }
  checks.push(...(ours[0]?.checks ?? []));
  const meetsTarget = checks.some((c) => c.ok === false)
    ? false
    : checks.every((c) => c.ok === true)
      ? true
      : null;
  const notes = [...new Set(ours.flatMap((r) => r.notes ?? []))];
  if (llama) notes.push(...llama.notes);
  if (llama?.llama && first.byWeights) {
    const theirs = llama.llama.tokensPerSecond;
    const each = Object.entries(first.byWeights).map(([w, x]) => `${w} ${r3(x / theirs)}×`);
    notes.push(`ours / llama.cpp's GGUF f16 (1 thread), by our weights: ${each.join(', ')}`);
  } else if (!spec.peerArgs) notes.push('no PyTorch peer for this case');
  else if (peerNote) notes.push(`peer: ${peerNote}`);
  const cps = med((r) => r.charsPerSecond);
  const trainLoss = med((r) => r.trainLoss);
  return {
    name: spec.name,
    backend: first.backend,
    ...(tps !== undefined ? { tokensPerSecond: r1(tps) } : {}),
    ...(cps !== undefined ? { charsPerSecond: Math.round(cps) } : {}),
    ...(seconds !== undefined ? { seconds } : {}),
    ...(valLoss !== undefined ? { valLoss } : {}),
    ...(trainLoss !== undefined ? { trainLoss } : {}),
    ...(first.vocabSize !== undefined ? { vocabSize: first.vocabSize } : {}),
    ...(first.vocab !== undefined ? { vocab: first.vocab, steps: first.steps } : {}),
    ...(first.workers !== undefined ? { workers: first.workers } : {}),
    ...(first.scaling ? { scaling: first.scaling } : {}),
    ...(first.byWeights ? { byWeights: first.byWeights } : {}),
    peakRssMB: peak,
    torch,
    ...(llama ? { llama: llama.llama } : {}),
    ratio,
    target,
    meetsTarget,
    checks,
    ...(runs.length > 1 ? { runs } : first.samplesMs ? { samplesMs: first.samplesMs } : {}),
    notes,
  };
}

function fmtInt(x: number | undefined): string {
  return x === undefined ? '—' : Math.round(x).toLocaleString('en-US');
}

function oursCell(r: Row): string {
  if (r.error) return 'FAILED';
  if (r.name === 'learn') return r.valLoss !== undefined ? `val ${r.valLoss.toFixed(4)}` : '—';
  if (r.charsPerSecond !== undefined) return `${fmtInt(r.charsPerSecond)} ch/s (${r.seconds} s)`;
  if (r.scaling) {
    return r.scaling.map((x) => `${x.workers}w ${fmtInt(x.tokensPerSecond)}`).join(', ') + ' tok/s';
  }
  if (r.byWeights) {
    return Object.entries(r.byWeights)
      .map(([w, tps]) => `${w} ${fmtInt(tps)}`)
      .join(', ')
      .concat(' tok/s');
  }
  const on = r.workers !== undefined ? ` (${r.workers}w)` : '';
  return `${fmtInt(r.tokensPerSecond)} tok/s${on}`;
}

function torchCell(r: Row): string {
  if (r.llama) {
    const d = r.llama.defaultThreads;
    const more = d ? `; ${d.threads} threads ${fmtInt(d.tokensPerSecond)}` : '';
    return `llama.cpp ${fmtInt(r.llama.tokensPerSecond)} tok/s (1 thread${more})`;
  }
  if (!r.torch) return '—';
  if (r.name === 'learn')
    return r.torch.valLoss !== undefined ? `val ${r.torch.valLoss.toFixed(4)}` : '—';
  return `${fmtInt(r.torch.tokensPerSecond)} tok/s`;
}

function targetCell(r: Row): string {
  return r.checks
    .map((c) => {
      const what =
        c.what === 'ratio'
          ? 'ratio'
          : c.what === 'peakRssMB'
            ? 'RSS MB'
            : c.what === 'seconds'
              ? 's'
              : c.what === 'speedup2'
                ? '2 workers ×'
                : c.what === 'trainLossDiff'
                  ? '|Δtrain| 1w/Nw'
                  : '|Δval|';
      return `${what} ${c.op} ${c.target}`;
    })
    .join(', ');
}

function printTable(rows: Row[]): void {
  const head = [
    'case',
    'backend',
    'ours',
    'torch',
    'ratio',
    'target',
    'met',
    'peak RSS MB',
    'torch RSS MB',
  ];
  const body = rows.map((r) => [
    r.name,
    r.backend,
    oursCell(r),
    torchCell(r),
    r.ratio === null
      ? r.name === 'learn' && r.checks[0]?.value != null
        ? `Δ ${r.checks[0].value}`
        : r.checks[0]?.what === 'speedup2' && r.checks[0].value != null
          ? `×${r.checks[0].value} (2w/1w)`
          : r.checks[0]?.what === 'trainLossDiff' && r.checks[0].value != null
            ? `Δ ${r.checks[0].value}`
            : '—'
      : r.ratio.toFixed(3),
    targetCell(r),
    r.error ? 'error' : r.meetsTarget === null ? '?' : r.meetsTarget ? 'yes' : 'NO',
    r.error ? '—' : String(r.peakRssMB),
    r.torch?.peakRssMB != null ? String(r.torch.peakRssMB) : '—',
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  console.log(line(head));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const b of body) console.log(line(b));
  for (const r of rows) {
    for (const n of r.notes) console.log(`  ${r.name}: ${n}`);
    if (r.error) console.log(`  ${r.name}: ${r.error.split('\n')[0]}`);
  }
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  if (o.child) return childMain(o);
  if (o.profile) return profileMain(o);

  const progress = (s: string) => process.stderr.write(s + '\n');
  let peer: PeerInfo | undefined;
  let peerNote: string | undefined;
  if (o.peer) {
    peer = await probePeer(REPO_ROOT);
    if (!peer.available) {
      peerNote = `skipped: ${peer.reason}`;
      progress(`PyTorch peer skipped: ${peer.reason}`);
      peer = undefined;
    } else {
      progress(`PyTorch peer: ${peer.script} (torch ${peer.torchVersion}; ${peer.threads})`);
    }
  } else {
    peerNote = 'skipped (--no-peer)';
  }

  const llamaCases = await LlamaCases.open(o.cases, o.peer, progress);

  const rows: Row[] = [];
  const started = new Date();
  for (const name of o.cases) {
    const spec = findCase(name);
    const runs: CaseRun[] = [];
    let corpusFile: string | undefined;
    let caseNote = peer ? undefined : peerNote;
    try {
      for (let rep = 0; rep < o.repeat; rep++) {
        const tag = o.repeat > 1 ? ` (${rep + 1}/${o.repeat})` : '';
        progress(`${name}${tag}: ours…`);
        const ours = await runChild(name, o, (l) => progress(`  [${name}] ${l}`));
        let torch: PeerResult | null = null;
        if (peer && spec.peerArgs) {
          progress(`${name}${tag}: torch…`);
          if (spec.kind === 'learn' && corpusFile === undefined)
            corpusFile = await writeLearnCorpus();
          try {
            torch = await runPeer(peer, spec.peerArgs(corpusFile ?? ''));
          } catch (err) {
            progress(`  [${name}] peer failed: ${(err as Error).message}`);
            caseNote = `failed: ${(err as Error).message}`;
          }
        }
        let llama: LlamaPeerResult | null = null;
        if (llamaCases?.available && spec.kind === 'llama') {
          progress(`${name}${tag}: llama.cpp…`);
          llama = await llamaCases.run(name, progress);
        }
        runs.push({ ours, torch, ...(spec.kind === 'llama' ? { llama } : {}) });
      }
      const row = summarise(spec, runs, caseNote, llamaCases);
      rows.push(row);
      if (o.json) console.log(JSON.stringify(row));
      else progress(`${name}: ${oursCell(row)} vs ${torchCell(row)}`);
    } catch (err) {
      const row: Row = {
        name,
        backend: o.backend,
        peakRssMB: 0,
        torch: null,
        ratio: null,
        target: null,
        meetsTarget: false,
        checks: [],
        notes: [],
        error: (err as Error).message,
      };
      rows.push(row);
      progress((err as Error).message);
      if (o.json) console.log(JSON.stringify(row));
    } finally {
      if (corpusFile) await fs.rm(corpusFile, { force: true });
    }
  }

  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  const doc = {
    date: started.toISOString(),
    seconds: r1((Date.now() - started.getTime()) / 1000),
    machine: {
      cpu,
      cores: os.availableParallelism?.() ?? os.cpus().length,
      memoryMB: Math.round(os.totalmem() / 2 ** 20),
      loadAverage: os.loadavg().map(r1),
      platform: `${os.platform()} ${os.release()}`,
      node: process.version,
    },
    options: {
      cases: o.cases,
      backend: o.backend,
      repeat: o.repeat,
      peer: o.peer,
      ...(o.workers !== undefined ? { workers: o.workers } : {}),
    },
    peer: peer
      ? {
          script: peer.script,
          python: peer.python,
          torch: peer.torchVersion,
          threads: peer.threads,
        }
      : { skipped: peerNote ?? 'not run' },
    ...(llamaCases ? { llamaPeer: llamaCases.describe() } : {}),
    learn: o.cases.includes('learn')
      ? {
          ...LEARN,
          measurement: 'mean loss of 40 random val windows × batch 16 × block 64, like the peer',
        }
      : undefined,
    results: rows,
  };
  const out = path.resolve(o.out);
  await fs.writeFile(out, JSON.stringify(doc, null, 2) + '\n');
  if (!o.json) {
    console.log();
    printTable(rows);
    console.log(`\nresults written to ${path.relative(process.cwd(), out) || out}`);
  }
  process.exitCode = rows.some((r) => r.error) ? 1 : 0;
}

async function profileMain(o: Options): Promise<void> {
  const p = await profileCase(o.profile!, o.backend);
  if (o.json) {
    console.log(JSON.stringify(p));
    return;
  }
  console.log(
    `tf.profile of ${p.case} on ${p.backend}: ${p.what}\n` +
      `${p.kernels} kernels, ${p.totalKernelMs} ms in kernels, ${p.wallMs} ms wall ` +
      `(profiling adds overhead; customGrad forwards, ${p.customGradForwardMs} ms, are ` +
      'counted in their own kernels)',
  );
  const show = (title: string, rows: typeof p.byKernel) => {
    console.log(`\n${title}`);
    console.log(`${'ms'.padStart(9)} ${'share'.padStart(6)} ${'calls'.padStart(6)}  kernel`);
    for (const r of rows) {
      const share = `${(r.share * 100).toFixed(1)}%`;
      console.log(
        `${r.ms.toFixed(2).padStart(9)} ${share.padStart(6)} ${String(r.calls).padStart(6)}  ${r.kernel}`,
      );
    }
  };
  show('by kernel', p.byKernel);
  show('by kernel and input shapes', p.byKernelAndShape);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().then(
    () => {
      // wasm/webgpu keep handles open; a case child must end once it has reported.
      if (process.argv.includes('--child') || process.argv.includes('--profile')) process.exit(0);
    },
    (err: unknown) => {
      console.error(err instanceof Error ? err.message : err);
      process.exit(1);
    },
  );
}
