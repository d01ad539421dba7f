/**
 * `memjob inspect FILE`: what a dump, .npy or joblib file holds, read from its
 * header and structure only. The file is not trusted: the report is bounded
 * (inspect.ts), every key, path and preview is printed terminal-safe, and
 * the whole output is capped.
 */
import { inspectFile, type ArrayReport, type FileReport, type JoblibArrayReport, type ValueNode } from '../format/inspect.js';
import { formatBytes, formatBytesExact, formatShape, limitOutput, print, printJson, table, terminalSafe } from './output.js';

export interface InspectCommandOptions {
  json?: boolean;
  checkData?: boolean;
  maxEntries?: number;
  maxDepth?: number;
  maxRows?: number;
  maxArrays?: number;
  maxHeaderSize?: number;
}

/** The text report's last bound, whatever the --max-* options allow. */
const MAX_OUTPUT = 1 << 20;

export async function runInspect(file: string, options: InspectCommandOptions): Promise<void> {
  const report = await inspectFile(file, {
    checkData: options.checkData === true,
    ...(options.maxEntries === undefined ? {} : { maxEntries: options.maxEntries }),
    ...(options.maxDepth === undefined ? {} : { maxDepth: options.maxDepth }),
    ...(options.maxRows === undefined ? {} : { maxRows: options.maxRows }),
    ...(options.maxArrays === undefined ? {} : { maxArrays: options.maxArrays }),
    ...(options.maxHeaderSize === undefined ? {} : { maxHeaderSize: options.maxHeaderSize }),
  });
  if (options.json === true) printJson(report);
  else print(limitOutput(renderReport(report), MAX_OUTPUT, 'lower --max-entries, --max-rows or --max-arrays'));
}

const count = (n: number, noun: string, nouns = `${noun}s`) => `${n.toLocaleString('en-US')} ${n === 1 ? noun : nouns}`;

export function renderReport(report: FileReport): string[] {
  const lines: string[] = [];
  const { format } = report;
  lines.push(...table([['file', terminalSafe(report.path)], ...formatRows(report)]));
  lines.push('');
  renderNode(report.tree, report.arrays, 'value', '', lines);
  lines.push('');
  const where = (format.type === 'memjob-dump' || format.type === 'joblib') && format.compression !== null ? 'offset (decompressed)' : 'offset';
  lines.push(`arrays: ${report.arrayCount}${report.arrayCount === 0 ? '' : `, ${formatBytes(report.arrayBytes)} in all`}`);
  if (report.arrays.length > 0) {
    const npy = format.type === 'npy' || format.type === 'joblib'; // both name numpy's descr
    const header = ['path', 'kind', 'dtype', ...(npy ? ['descr'] : []), 'shape', 'order', where, 'bytes'];
    const rows = report.arrays.map((a) => [
      terminalSafe(a.alsoAt.length + a.alsoAtMore === 0 ? a.path : `${a.path} (+${a.alsoAt.length + a.alsoAtMore} more)`),
      a.kind,
      a.dtype,
      ...(npy ? [(a as { descr?: string }).descr ?? ''] : []),
      formatShape(a.shape),
      a.order,
      location(a, 'in pickle', ''),
      String(a.bytes),
    ]);
    lines.push(...table([header, ...rows], '  '));
  }
  const unlisted = report.arrayCount - report.arrays.length;
  if (unlisted > 0) lines.push(`  ... ${count(unlisted, 'more array')} not listed (--max-arrays)`);
  return lines;
}

function formatRows(report: FileReport): string[][] {
  const { format } = report;
  if (format.type === 'joblib') {
    return [
      [
        'format',
        `joblib / Python pickle, protocol ${format.protocol}${format.compression === null ? '' : `, compressed with ${format.compression === 'zfile' ? "zlib (joblib 0.9's Z-file)" : format.compression}`} (read by the restricted unpickler; arrays not ${format.compression === null ? 'read' : 'built'})`,
      ],
      ['size', format.compression === null ? formatBytesExact(format.fileBytes) : `${formatBytesExact(format.fileBytes)} on disk, ${formatBytesExact(format.pickleBytes)} decompressed`],
    ];
  }
  if (format.type === 'npy') {
    const data = format.fileBytes - format.headerBytes - format.trailingBytes;
    return [
      ['format', `numpy .npy, version ${format.version}`],
      ['size', formatBytesExact(format.fileBytes)],
      ['layout', `header ${format.headerBytes} B, data ${formatBytes(data)} at offset ${format.headerBytes}${format.trailingBytes > 0 ? `, ${format.trailingBytes} trailing bytes` : ''}`],
    ];
  }
  const rows = [
    ['format', `memjob dump, version ${format.version}, alignment ${format.alignment}, ${format.compression === null ? 'not compressed' : `${format.compression}-compressed`}`],
    [
      'size',
      format.compression === null
        ? formatBytesExact(format.fileBytes)
        : `${formatBytesExact(format.fileBytes)} on disk, ${formatBytesExact(format.dumpBytes)} decompressed`,
    ],
    [
      'layout',
      `structure ${formatBytes(format.structureBytes)} at offset ${format.structureOffset}, data ${formatBytes(format.dataBytes)} at offset ${format.dataOffset}, ${format.segments} segment${format.segments === 1 ? '' : 's'}`,
    ],
  ];
  if (!format.dataChecked) rows.push(['', 'data not decompressed (offsets are in the decompressed content); --check-data reads it through']);
  return rows;
}

function describeArray(a: ArrayReport | JoblibArrayReport): string {
  const descr = a.descr === undefined ? '' : ` '${a.descr}'`;
  return `${a.kind} ${a.dtype}${descr} ${formatShape(a.shape)} ${a.order}, ${formatBytes(a.bytes)} ${location(a, 'inside the pickle', 'at offset ')}`;
}

/** Where an array's bytes are: the offset, or where they sit when there is none; joblib 0.9's side files named. */
function location(a: ArrayReport | JoblibArrayReport, none: string, before: string): string {
  const side = 'sideFile' in a && a.sideFile !== null ? terminalSafe(a.sideFile) : null;
  if (side !== null) return a.offset === null ? `in side file ${side}` : `${before}${a.offset} of side file ${side}`;
  return a.offset === null ? none : `${before}${a.offset}`;
}

function renderNode(node: ValueNode, arrays: readonly (ArrayReport | JoblibArrayReport)[], label: string, indent: string, lines: string[]): void {
  switch (node.type) {
    case 'array-data': {
      const array = arrays[node.array]!;
      const again = array.path !== node.path ? ` (same array as ${terminalSafe(array.path)})` : '';
      lines.push(`${indent}${label}: ${describeArray(array)}${again}`);
      return;
    }
    case 'object':
    case 'array':
    case 'map':
    case 'set': {
      const noun = node.type === 'object' ? 'key' : node.type === 'map' ? 'entry' : 'item';
      const plural = node.size === 1 ? noun : noun === 'entry' ? 'entries' : `${noun}s`;
      const name = node.type === 'map' ? 'Map' : node.type === 'set' ? 'Set' : node.type;
      lines.push(`${indent}${label}: ${name} (${node.size} ${plural})`);
      const inner = `${indent}  `;
      for (const entry of node.entries) {
        const key = node.type === 'array' || node.type === 'set' ? `[${entry.key}]` : terminalSafe(entry.key);
        const cut = entry.keyLength === undefined ? '' : ` (key truncated to ${entry.key.length - 1} of ${entry.keyLength.toLocaleString('en-US')} characters)`;
        renderNode(entry.value, arrays, `${key}${cut}`, inner, lines);
      }
      if (node.more > 0) {
        const more = `${inner}... ${count(node.more, 'more entry', 'more entries')}`;
        if (node.cut === 'max-depth') lines.push(`${more}, nested deeper than --max-depth`);
        else if (node.cut === 'max-rows') lines.push(`${more}, past --max-rows rows in all`);
        else lines.push(more);
      }
      return;
    }
    default:
      lines.push(`${indent}${label}: ${node.type === node.preview ? node.type : `${node.type} ${terminalSafe(node.preview)}`}`);
  }
}
