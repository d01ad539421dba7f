/**
 * A tiny dependency-free SVG writer for horizontal bar charts, used by
 * bench/report.ts. One bar per row, its label on the left, its value at the
 * end of the bar, a title (wrapped), optional note lines, and an x axis with
 * round ticks and the unit. 700 px wide; every text is XML-escaped.
 */

export interface Bar {
  label: string;
  value: number;
  /** memjob's own bars are drawn in the accent colour, the others in grey. */
  memjob?: boolean;
}

export interface BarChart {
  title: string;
  /** Axis unit, e.g. "GB/s"; also printed after each value. */
  unit: string;
  bars: Bar[];
  /** Small lines under the title: what was skipped, what the reference is. */
  notes?: string[];
  /** How each value is written at the end of its bar (default: 3 significant digits, thousands separated). */
  format?: (value: number) => string;
}

const width = 700;
const font = 'font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif"';
const accent = '#2f6fce';
const other = '#9aa0a6';

export function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c]!);
}

/** Three significant digits below 1,000, whole numbers with separators above. */
export function formatNumber(value: number): string {
  const abs = Math.abs(value);
  if (abs >= 1000) return Math.round(value).toLocaleString('en-US');
  if (abs >= 100) return value.toFixed(0);
  if (abs >= 10) return value.toFixed(1);
  if (abs >= 1) return value.toFixed(2);
  return value === 0 ? '0' : value.toPrecision(3);
}

/** A tick value without float noise or trailing zeros: 0.1, 2.5, 200,000. */
const formatTick = (t: number) => (t >= 1000 ? Math.round(t).toLocaleString('en-US') : String(+t.toPrecision(6)));

/** Greedy word wrap by an estimated character budget. */
function wrap(text: string, maxChars: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/)) {
    if (line !== '' && line.length + 1 + word.length > maxChars) {
      lines.push(line);
      line = word;
    } else line = line === '' ? word : `${line} ${word}`;
  }
  if (line !== '') lines.push(line);
  return lines;
}

/** A round tick step (1, 2 or 5 × 10^k) giving about `count` ticks up to `max`. */
function tickStep(max: number, count = 5): number {
  const raw = max / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw);
  return step ?? 10 * power;
}

/** Estimated text width in px at 12 px (average glyph ~6.6 px). */
const textWidth = (text: string, px = 12) => [...text].length * px * 0.55;

export function barChartSvg(chart: BarChart): string {
  const format = chart.format ?? formatNumber;
  const titleLines = wrap(chart.title, 72);
  const notes = (chart.notes ?? []).flatMap((n) => wrap(n, 98));
  const labelWidth = Math.min(300, Math.max(80, ...chart.bars.map((b) => textWidth(b.label)))) + 16;
  const valueTexts = chart.bars.map((b) => `${format(b.value)} ${chart.unit}`);
  const valueWidth = Math.max(40, ...valueTexts.map((t) => textWidth(t))) + 12;
  const plotLeft = labelWidth;
  const plotWidth = width - plotLeft - valueWidth - 12;

  const barHeight = 22;
  const gap = 8;
  let y = 28;
  const parts: string[] = [];
  for (const line of titleLines) {
    parts.push(`<text x="16" y="${y}" font-size="16" font-weight="600" fill="#202124">${escapeXml(line)}</text>`);
    y += 21;
  }
  for (const line of notes) {
    parts.push(`<text x="16" y="${y}" font-size="12" fill="#5f6368">${escapeXml(line)}</text>`);
    y += 16;
  }
  y += 10;

  const max = Math.max(0, ...chart.bars.map((b) => b.value));
  const step = max > 0 ? tickStep(max) : 1;
  const axisMax = Math.max(step, Math.ceil(max / step) * step);
  const scale = (v: number) => (Math.max(0, v) / axisMax) * plotWidth;
  const plotTop = y;
  const plotBottom = plotTop + chart.bars.length * (barHeight + gap);

  // Grid lines and ticks first, so the bars draw over them.
  const ticks: number[] = [];
  for (let t = 0; t <= axisMax + step / 1e6; t += step) ticks.push(t);
  for (const t of ticks) {
    const x = (plotLeft + scale(t)).toFixed(1);
    parts.push(`<line x1="${x}" y1="${plotTop - 4}" x2="${x}" y2="${plotBottom}" stroke="#e8eaed"/>`);
    parts.push(`<text x="${x}" y="${plotBottom + 16}" font-size="11" fill="#5f6368" text-anchor="middle">${escapeXml(formatTick(t))}</text>`);
  }
  parts.push(`<line x1="${plotLeft}" y1="${plotTop - 4}" x2="${plotLeft}" y2="${plotBottom}" stroke="#5f6368"/>`);
  parts.push(`<line x1="${plotLeft}" y1="${plotBottom}" x2="${plotLeft + plotWidth}" y2="${plotBottom}" stroke="#5f6368"/>`);

  chart.bars.forEach((bar, i) => {
    const top = plotTop + i * (barHeight + gap);
    const middle = top + barHeight / 2 + 4;
    const w = scale(bar.value);
    parts.push(`<text x="${plotLeft - 8}" y="${middle}" font-size="12" fill="#202124" text-anchor="end">${escapeXml(bar.label)}</text>`);
    parts.push(`<rect x="${plotLeft}" y="${top}" width="${w.toFixed(1)}" height="${barHeight}" fill="${bar.memjob ? accent : other}"/>`);
    parts.push(`<text x="${(plotLeft + w + 6).toFixed(1)}" y="${middle}" font-size="12" fill="#202124">${escapeXml(valueTexts[i]!)}</text>`);
  });

  y = plotBottom + 36;
  parts.push(`<text x="${plotLeft + plotWidth / 2}" y="${y}" font-size="12" fill="#202124" text-anchor="middle">${escapeXml(chart.unit)}</text>`);
  // Legend: which colour is memjob.
  y += 20;
  parts.push(`<rect x="16" y="${y - 10}" width="12" height="12" fill="${accent}"/>`);
  parts.push(`<text x="34" y="${y}" font-size="12" fill="#202124">memjob</text>`);
  parts.push(`<rect x="96" y="${y - 10}" width="12" height="12" fill="${other}"/>`);
  parts.push(`<text x="114" y="${y}" font-size="12" fill="#202124">other (competitor or floor)</text>`);
  const height = Math.ceil(y + 14);

  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ${font}>`,
    `<title>${escapeXml(chart.title)}</title>`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    ...parts,
    '</svg>',
    '',
  ].join('\n');
}
