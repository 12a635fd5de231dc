/**
 * Plain-text tables that fit the terminal: the swim lanes, the verdict table
 * and `list` share it. Column widths are fitted to the width available
 * ($COLUMNS, the terminal's width, or 100 when the output is piped) and
 * cells wrap inside their column (wrap-ansi, at spaces, hard-breaking only
 * words longer than the column). `--wide` lifts the limit.
 */
import stringWidth from 'string-width';
import wrapAnsi from 'wrap-ansi';

/** Output width: unlimited with `wide`, else $COLUMNS, the terminal's width, or 100 when piped. */
export function outputWidth(wide = false): number {
  if (wide) return Number.POSITIVE_INFINITY;
  const env = Number(process.env.COLUMNS);
  if (Number.isInteger(env) && env >= 40) return env;
  if (process.stdout.isTTY && process.stdout.columns >= 40) return process.stdout.columns;
  return 100;
}

/** Display width in columns; of a multi-line text, its widest line. */
export const textWidth = (s: string): number =>
  s.includes('\n') ? Math.max(...s.split('\n').map((l) => stringWidth(l))) : stringWidth(s);

/**
 * Column widths: each column gets what its widest cell needs if that fits;
 * otherwise the space is shared out (water-filling), narrow columns first,
 * and no column gets less than its minimum.
 */
export function fitWidths(desired: readonly number[], min: readonly number[], total: number): number[] {
  const widths = desired.map((d, i) => Math.max(d, min[i]));
  if (widths.reduce((a, b) => a + b, 0) <= total) return widths;
  const order = desired.map((_, i) => i).sort((a, b) => desired[a] - desired[b]);
  let left = total;
  let columns = order.length;
  for (const i of order) {
    const share = Math.floor(left / columns);
    widths[i] = Math.max(min[i], Math.min(desired[i], share));
    left -= widths[i];
    columns--;
  }
  return widths;
}

/** Wrap a cell to `width` columns: its lines, none wider than `width`. */
export function wrapCell(text: string, width: number): string[] {
  if (!Number.isFinite(width) || textWidth(text) <= width) return text.split('\n');
  return wrapAnsi(text, width, { hard: true, trim: true }).split('\n');
}

const pad = (s: string, width: number) => s + ' '.repeat(Math.max(0, width - textWidth(s)));

/**
 * Rows of cells laid out in columns of the given widths, each cell wrapped
 * inside its column; a row takes as many lines as its tallest cell. The last
 * column is not padded, so no line carries trailing spaces.
 */
export function renderRows(
  rows: readonly (readonly string[])[],
  widths: readonly number[],
  sep: string,
): string[] {
  const lines: string[] = [];
  for (const row of rows) {
    const cells = row.map((c, i) => wrapCell(c, widths[i]));
    const height = Math.max(...cells.map((c) => c.length));
    for (let k = 0; k < height; k++) {
      const parts = cells.map((c, i) => (i === cells.length - 1 ? (c[k] ?? '') : pad(c[k] ?? '', widths[i])));
      lines.push(parts.join(sep).trimEnd());
    }
  }
  return lines;
}

/**
 * A table with a header and a rule under it, fitted to `total` columns.
 * `min` gives each column's minimum width (default 8).
 */
export function formatTable(
  header: readonly string[],
  rows: readonly (readonly string[])[],
  total: number,
  options: { sep?: string; min?: readonly number[] } = {},
): string[] {
  const sep = options.sep ?? '  ';
  const desired = header.map((h, i) => Math.max(textWidth(h), ...rows.map((r) => textWidth(r[i] ?? ''))));
  const min = options.min ?? header.map((h, i) => Math.min(desired[i], Math.max(8, textWidth(h))));
  const widths = fitWidths(desired, min, total - sep.length * (header.length - 1));
  const rule = widths.map((w) => '-'.repeat(w));
  return [...renderRows([header], widths, sep), rule.join(sep), ...renderRows(rows, widths, sep)];
}
