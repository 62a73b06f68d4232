/** Formatting shared by every side. Pure. */

/** Bytes in binary units, labelled as such: 512 B, 1.5 KiB, 20.0 MiB, 1.25 GiB. */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n)) return 'unlimited';
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

/**
 * A probability (0–1) as a percentage for people, in plain decimals: 100%, 42%, 3.4%, 0.05%,
 * 0.0003%. Two significant digits at most below 10%; anything under 0.0001% reads "<0.0001%".
 */
export function formatProbability(p: number): string {
  if (!(p > 0)) return '0%';
  const pct = Math.min(p, 1) * 100;
  if (pct >= 99.5) return '100%';
  if (pct >= 10) return `${pct.toFixed(0)}%`;
  if (pct < 1e-4) return '<0.0001%';
  // decimals for two significant digits, then trailing zeros dropped (0.050 → 0.05)
  const decimals = Math.max(1, 1 - Math.floor(Math.log10(pct)));
  return `${trimZeros(pct.toFixed(decimals))}%`;
}

function trimZeros(s: string): string {
  return s.includes('.') ? s.replace(/\.?0+$/, '') : s;
}

/**
 * Shares are percents wherever people see or type them (the UI, the CLI's --val-percent and
 * --warmup-percent) and fractions in the contract and the engine: 10 → 0.1, without float noise.
 */
export function fractionOf(percent: number): number {
  return Number((percent / 100).toPrecision(12));
}

/** A fraction as the percent people see: 0.002 → 0.2. */
export function percentOf(fraction: number): number {
  return Number((fraction * 100).toPrecision(12));
}
