/** `finetune`'s human output: imported rows, progress lines, metrics and the comparison tables. */
import type {
  AblationResult,
  ColumnMap,
  FinetuneMetrics,
  FinetuneResult,
  GptBertResult,
  ImportCounts,
} from '../../common/finetune';
import { describeDiagnosis, type FinetuneDiagnosis } from '../../common/finetuneAdvice';
import type { FinetuneEvent } from '../../engine/finetune/finetune';
import type { GptBertEvent } from '../../engine/finetune/gptBert';
import type { FinetuneData } from '../../engine/finetune/load';
import { formatDuration, type Output } from '../output';

export function describeColumns(c: ColumnMap): string {
  return Object.entries(c)
    .map(([k, v]) => `${k}=${Array.isArray(v) ? v.join(',') : String(v)}`)
    .join(' ');
}

/** The columns read and the rows imported (one `finetune.data` event with --json). */
export function reportData(out: Output, columns: ColumnMap, prepared: FinetuneData): void {
  if (out.json) {
    out.emit({
      type: 'finetune.data',
      columns,
      labels: prepared.labels,
      train: prepared.trainImport,
      val: prepared.valImport,
      trainExamples: prepared.train.length,
      valExamples: prepared.val.length,
    });
  } else {
    out.line(`columns ${describeColumns(columns)}`);
    reportImport(out, 'data', prepared.trainImport);
    if (prepared.valImport) reportImport(out, 'val', prepared.valImport);
  }
}

export function printResult(
  out: Output,
  r: FinetuneResult,
  diagnosis: FinetuneDiagnosis | null,
  outDir: string,
): void {
  if (out.json) {
    if (diagnosis) out.emit({ type: 'finetune.diagnosis', ...diagnosis });
    out.emit(r);
  } else {
    out.endLive();
    out.line(
      `${r.outcome === 'cancelled' ? 'stopped' : 'done'}: ${r.steps} steps in ${formatDuration(r.elapsedMs)}` +
        ` — on the ${r.evaluatedOn === 'val' ? 'validation' : 'training'} set:`,
    );
    printMetrics(out, r.metrics);
    for (const l of diagnosis ? describeDiagnosis(diagnosis) : []) out.line(l);
    out.line(`saved to ${r.outDir}`);
    out.line(`  evaluate: gpt-studio evaluate --model ${outDir} --data FILE`);
  }
}

export function reportImport(out: Output, what: string, c: ImportCounts): void {
  out.line(
    `${what.padEnd(6)} ${c.file}: ${c.imported} of ${c.rows} rows imported` +
      (c.skipped ? `, ${c.skipped} skipped` : ''),
  );
  for (const p of c.problems.slice(0, 10)) out.warn(p.message);
  if (c.skipped > 10) out.note(`  … and ${c.skipped - 10} more skipped rows`);
}

export function printMetrics(out: Output, m: FinetuneMetrics): void {
  out.line(
    `accuracy ${m.accuracy.toFixed(4)} · macro-F1 ${m.macroF1.toFixed(4)}` +
      (m.f1 !== undefined ? ` · F1 (${m.positiveLabel}) ${m.f1.toFixed(4)}` : '') +
      ` · ${m.n} examples`,
  );
  const w = Math.max(6, ...m.labels.map((l) => l.length)) + 2;
  out.line('confusion (rows: true label, columns: predicted)');
  out.line(''.padEnd(w) + m.labels.map((l) => l.padStart(w)).join(''));
  m.confusion.forEach((row, i) =>
    out.line(m.labels[i]!.padEnd(w) + row.map((v) => String(v).padStart(w)).join('')),
  );
  if (m.mistakes.length) {
    out.line('most confident mistakes:');
    for (const x of m.mistakes.slice(0, 5)) {
      const text = x.input.length > 70 ? x.input.slice(0, 67) + '…' : x.input;
      out.line(
        `  row ${x.row}: ${x.predicted} (${(x.confidence * 100).toFixed(0)}%) but ${x.label}: ${JSON.stringify(text)}`,
      );
    }
  }
}
/** Human progress lines for finetune events. */
export function progressView(out: Output, logEvery: number) {
  return (e: FinetuneEvent) => {
    const pre = 'variant' in e && e.variant ? `[${e.variant}] ` : '';
    switch (e.type) {
      case 'finetune.variant':
        out.line(`── ${e.index + 1}/${e.count}: from ${e.init} weights, λ = ${e.lambda} ──`);
        return;
      case 'finetune.start':
        out.line(
          `${pre}train  ${e.trainExamples} examples · val ${e.valExamples} · ${e.totalSteps} steps over ${e.epochs} epoch(s)` +
            ` · labels ${e.labels.join(', ')} · ${e.backend}`,
        );
        if (e.newTokens.length)
          out.line(`${pre}vocab  + ${e.newTokens.join(' ')} (embeddings N(0, 0.02))`);
        return;
      case 'finetune.step':
        if (e.step % logEvery === 0 || e.step === 1 || e.step === e.totalSteps) {
          out.status(
            `${pre}step ${String(e.step).padStart(String(e.totalSteps).length)}/${e.totalSteps}  epoch ${e.epoch}` +
              `  loss ${e.loss.toFixed(4)} (L2 ${e.l2.toFixed(4)}, L1 ${e.l1.toFixed(4)})` +
              `  lr ${e.lr.toExponential(2)}  ETA ${formatDuration(e.etaMs)}`,
          );
        }
        return;
      case 'finetune.epoch':
        out.line(
          `${pre}epoch ${e.epoch}/${e.epochs}  val accuracy ${e.valAccuracy.toFixed(4)}  val loss ${e.valLoss.toFixed(4)}`,
        );
        return;
      case 'log':
        out.note(`${pre}${e.message}`);
        return;
      default:
        return;
    }
  };
}
/** Progress lines of GPT vs BERT: its phases and pretraining steps, then the fine-tunes' own. */
export function gptBertView(out: Output, finetuneView: (e: FinetuneEvent) => void) {
  return (e: GptBertEvent) => {
    if (e.type === 'gptbert.phase') {
      const what = e.phase === 'pretrain' ? 'pretraining' : 'fine-tuning';
      out.line(`── ${e.index + 1}/${e.count}: ${what} ${e.model} ──`);
    } else if (e.type === 'gptbert.step') {
      if (e.step % 10 === 0 || e.step === 1 || e.step === e.totalSteps) {
        out.status(
          `[${e.model}] pretrain step ${e.step}/${e.totalSteps}  loss ${e.trainLoss.toFixed(4)}` +
            `  ETA ${formatDuration(e.etaMs)}`,
        );
      }
    } else {
      finetuneView(e);
    }
  };
}

export function printGptBert(out: Output, r: GptBertResult): void {
  out.endLive();
  const p = r.pretrain;
  out.line('');
  out.line(
    `both pretrained ${p.steps} steps, ${p.nLayer} layers × ${p.nEmbd} wide, ${p.nHead} heads, ` +
      `context ${p.blockSize}; then fine-tuned alike (${r.task})`,
  );
  out.line('model  objective  params    pretrain loss  accuracy  macro-F1  pretrain  fine-tune');
  for (const v of r.rows) {
    out.line(
      `${v.model.padEnd(5)}  ${v.objective.padEnd(9)}  ${String(v.params).padEnd(8)}  ` +
        `${v.pretrainLoss.toFixed(4).padStart(13)}  ${v.accuracy.toFixed(4).padStart(8)}  ` +
        `${v.macroF1.toFixed(4).padStart(8)}  ${formatDuration(v.pretrainMs).padStart(8)}  ` +
        formatDuration(v.finetuneMs).padStart(9),
    );
  }
  out.line(
    "pretrain loss: GPT's is next-token, BERT's masked-token cross-entropy (not comparable). " +
      `total ${formatDuration(r.elapsedMs)}`,
  );
}

export function printAblation(out: Output, r: AblationResult): void {
  out.endLive();
  out.line('');
  out.line('init        λ     accuracy  macro-F1  time');
  for (const v of r.variants) {
    out.line(
      `${v.init.padEnd(10)}  ${String(v.lambda).padEnd(4)}  ${v.accuracy.toFixed(4).padStart(8)}  ${v.macroF1
        .toFixed(4)
        .padStart(8)}  ${formatDuration(v.elapsedMs)}`,
    );
  }
  out.line(`total ${formatDuration(r.elapsedMs)}`);
}
