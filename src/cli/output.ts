/** Small formatting helpers shared by the CLI commands. */

import { formatBytes } from '../system/format-bytes.js';

export { formatBytes };

/** "1.5 KiB (1536 bytes)", or "512 B" when the exact count adds nothing. */
export function formatBytesExact(bytes: number): string {
  return bytes < 1024 ? formatBytes(bytes) : `${formatBytes(bytes)} (${bytes} bytes)`;
}

export function formatShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

/** Rows padded into columns (the last column is not padded). */
export function table(rows: readonly (readonly string[])[], indent = ''): string[] {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  return rows.map((row) => indent + row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ').trimEnd());
}

/**
 * Characters a terminal acts on rather than shows: C0 controls (ESC starts
 * the sequences that set a title, colours, or move the cursor over earlier
 * lines), DEL, C1 controls (U+009B is a one-character CSI), line and
 * paragraph separators, and the bidirectional overrides that reorder text.
 */
const UNSAFE = /[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;
const NAMED: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };
/** The same less C0, which JSON.stringify escapes inside strings already (and its own line breaks must stay). */
const UNSAFE_IN_JSON = /[\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

/**
 * Text from a file or the system (keys, file names, messages) made safe to
 * print, as `ls` and `git` do: each character above becomes a visible
 * escape (ESC is shown as the four characters `\x1b`). The escapes are
 * printable, so escaping twice changes nothing.
 */
export function terminalSafe(text: string): string {
  return text.replace(UNSAFE, (c) => {
    const code = c.charCodeAt(0);
    return NAMED[c] ?? (code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`);
  });
}

/** Writes lines to stdout, every line made terminalSafe (whatever its source). */
export function print(lines: string | readonly string[]): void {
  const all = typeof lines === 'string' ? [lines] : lines;
  process.stdout.write(`${all.map(terminalSafe).join('\n')}\n`);
}

/**
 * Writes JSON to stdout. JSON.stringify escapes C0 controls in strings;
 * the rest of what terminalSafe escapes is written as \u escapes too, which
 * JSON reads back as the same characters.
 */
export function printJson(value: unknown): void {
  const text = JSON.stringify(value, null, 2).replace(UNSAFE_IN_JSON, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  process.stdout.write(`${text}\n`);
}

/**
 * Lines up to about `maxBytes` characters in all; past that, one line says
 * how many were left out. A report is bounded by its own limits; this is
 * the last guard, for limits a user raised.
 */
export function limitOutput(lines: readonly string[], maxBytes: number, hint: string): string[] {
  let total = 0;
  for (let i = 0; i < lines.length; i++) {
    total += lines[i]!.length + 1;
    if (total > maxBytes) return [...lines.slice(0, i), `... output cut at ${formatBytes(maxBytes)}: ${lines.length - i} more lines; ${hint}`];
  }
  return [...lines];
}
