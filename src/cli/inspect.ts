/** `memjob inspect FILE`: what a dump or .npy file holds, read from its header and structure only. */
import { inspectFile, type ArrayReport, type FileReport, type ValueNode } from '../format/inspect.js';
import { formatBytes, formatBytesExact, formatShape, print, printJson, table } from './output.js';

export interface InspectCommandOptions {
  json?: boolean;
  checkData?: boolean;
  maxEntries?: number;
  maxDepth?: number;
}

export async function runInspect(file: string, options: InspectCommandOptions): Promise<void> {
  const report = await inspectFile(file, {
    checkData: options.checkData === true,
    ...(options.maxEntries === undefined ? {} : { maxEntries: options.maxEntries }),
    ...(options.maxDepth === undefined ? {} : { maxDepth: options.maxDepth }),
  });
  if (options.json === true) printJson(report);
  else print(renderReport(report));
}

export function renderReport(report: FileReport): string[] {
  const lines: string[] = [];
  const { format } = report;
  lines.push(...table([['file', report.path], ...formatRows(report)]));
  lines.push('');
  renderNode(report.tree, report.arrays, 'value', '', lines);
  lines.push('');
  const total = report.arrays.reduce((sum, a) => sum + a.bytes, 0);
  const where = format.type === 'memjob-dump' && format.compression !== null ? 'offset (decompressed)' : 'offset';
  lines.push(`arrays: ${report.arrays.length}${report.arrays.length === 0 ? '' : `, ${formatBytes(total)} in all`}`);
  if (report.arrays.length > 0) {
    const npy = format.type === 'npy';
    const header = ['path', 'kind', 'dtype', ...(npy ? ['descr'] : []), 'shape', 'order', where, 'bytes'];
    const rows = report.arrays.map((a) => [
      a.alsoAt.length === 0 ? a.path : `${a.path} (+${a.alsoAt.length} more)`,
      a.kind,
      a.dtype,
      ...(npy ? [a.descr ?? ''] : []),
      formatShape(a.shape),
      a.order,
      String(a.offset),
      String(a.bytes),
    ]);
    lines.push(...table([header, ...rows], '  '));
  }
  return lines;
}

function formatRows(report: FileReport): string[][] {
  const { format } = report;
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

function describeArray(a: ArrayReport): string {
  const descr = a.descr === undefined ? '' : ` '${a.descr}'`;
  return `${a.kind} ${a.dtype}${descr} ${formatShape(a.shape)} ${a.order}, ${formatBytes(a.bytes)} at offset ${a.offset}`;
}

function renderNode(node: ValueNode, arrays: readonly ArrayReport[], label: string, indent: string, lines: string[]): void {
  switch (node.type) {
    case 'array-data': {
      const array = arrays[node.array]!;
      const again = array.path !== node.path ? ` (same array as ${array.path})` : '';
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
        const key = node.type === 'array' || node.type === 'set' ? `[${entry.key}]` : entry.key;
        renderNode(entry.value, arrays, key, inner, lines);
      }
      if (node.more > 0) {
        // No entry shown at all means the depth limit, not the entry limit, cut here.
        lines.push(node.entries.length === 0 ? `${inner}... ${node.more} more, nested deeper than --max-depth` : `${inner}... ${node.more} more`);
      }
      return;
    }
    default:
      lines.push(`${indent}${label}: ${node.type === node.preview ? node.type : `${node.type} ${node.preview}`}`);
  }
}
