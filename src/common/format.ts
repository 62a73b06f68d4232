/** Formatting shared by every side. Pure. */

/** Bytes in binary units, labelled as such: 512 B, 1.5 KiB, 20.0 MiB, 1.25 GiB. */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n)) return 'unlimited';
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}
