/**
 * dumpJoblib(): writes a file Python's `joblib.load` reads, as `joblib.dump`
 * would write it (joblib-pickle.ts has the layout). Uncompressed, its arrays
 * are aligned so `joblib.load(f, mmap_mode='r')` maps them; compressed, the
 * whole pickle goes through the compressor, as joblib does (zlib and gzip
 * streamed; lz4, xz and lzma in one call, xz and lzma only where the optional
 * package lzma-native is installed, as joblib needs python-lz4 for lz4). The write is
 * atomic, as dump()'s: a temp file beside the target, fsynced, renamed over it.
 */
import { createWriteStream } from 'node:fs';
import { extname } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as zlib from 'node:zlib';
import { ErrorCodes, MemjobError, invalidArg, systemError } from '../errors.js';
import { maxViewBytes } from '../native.js';
import { parseFilename } from '../system/filename.js';
import { createTempBeside, writeAllSync } from './atomic-file.js';
import { compressJoblib } from './joblib-compression.js';
import { partBytes, pickleForJoblib, type PicklePart } from './joblib-pickle.js';

export type JoblibCompressMethod = 'zlib' | 'gzip' | 'bz2' | 'lzma' | 'xz' | 'lz4';
/**
 * As joblib.dump's `compress`: true (zlib, or the method the filename's
 * extension names, at its default level), a level 0-9 (0: none), a method,
 * or [method, level]. bz2 is read by loadJoblib but cannot be written.
 */
export type JoblibCompressOption = boolean | number | JoblibCompressMethod | readonly [JoblibCompressMethod, number];

export interface DumpJoblibOptions {
  compress?: JoblibCompressOption;
}

interface JoblibCompression {
  method: JoblibCompressMethod;
  /** undefined: the compressor's default, as joblib passes None. */
  level: number | undefined;
}

const methods: readonly JoblibCompressMethod[] = ['zlib', 'gzip', 'bz2', 'lzma', 'xz', 'lz4'];
const byExtension: Record<string, JoblibCompressMethod> = { '.z': 'zlib', '.gz': 'gzip', '.bz2': 'bz2', '.lzma': 'lzma', '.xz': 'xz', '.lz4': 'lz4' };
/** joblib's BinaryZlibFile and BinaryGzipFile level when none is given. */
const ZLIB_DEFAULT_LEVEL = 3;
/** Python's lzma default preset, which joblib uses for xz and lzma when no level is given. */
const LZMA_DEFAULT_PRESET = 6;

/**
 * What `compress` asks for, or null for none, following joblib.dump exactly:
 * unless a [method, level] pair is given, a filename ending in .z, .gz, .bz2,
 * .lzma, .xz or .lz4 chooses the method (and compresses even at level 0).
 */
export function parseJoblibCompress(option: unknown, filename: string, where: string): JoblibCompression | null {
  const expected = 'true or false, a level from 0 to 9, one of ' + methods.map((m) => `'${m}'`).join(', ') + ', or [method, level]';
  let method: JoblibCompressMethod | undefined = 'zlib';
  let level: number | undefined;
  let pair = false;
  if (option === undefined || option === false) level = 0;
  else if (option === true) level = undefined;
  else if (typeof option === 'number' && Number.isInteger(option) && option >= 0 && option <= 9) level = option;
  else if (typeof option === 'string' && (methods as readonly string[]).includes(option)) {
    method = option as JoblibCompressMethod;
    pair = true;
  } else if (
    Array.isArray(option) &&
    option.length === 2 &&
    (methods as readonly unknown[]).includes(option[0]) &&
    Number.isInteger(option[1]) &&
    option[1] >= 0 &&
    option[1] <= 9
  ) {
    method = option[0] as JoblibCompressMethod;
    level = option[1] as number;
    pair = true;
  } else {
    throw invalidArg(where, 'compress', expected, option);
  }
  if (!pair) {
    const fromName = byExtension[extname(filename).toLowerCase()];
    if (fromName !== undefined) {
      method = fromName;
      if (level === 0) level = undefined;
    }
  }
  if (level === 0) return null;
  return { method, level };
}

/** Writes `value` to `filename` as joblib.dump would; returns [filename], as joblib.dump returns its list of files. */
export function dumpJoblibSync(value: unknown, filename: string | URL, options: DumpJoblibOptions = {}): string[] {
  const where = 'dumpJoblibSync';
  const { target, compression } = parseArgs(filename, options, where);
  const parts = pickleForJoblib(value, compression === null, where);
  const temp = createTempBeside(target, where);
  try {
    if (compression === null) {
      let position = 0;
      for (const chunk of partBytes(parts)) position = writeAllSync(temp.fd, chunk, position);
    } else {
      writeAllSync(temp.fd, compressWhole(gather(parts, where, target), compression), 0);
    }
    temp.commit();
  } catch (error) {
    temp.abort();
    throw error instanceof MemjobError ? error : systemError(where, error, target);
  }
  return [target];
}

/** dumpJoblibSync without blocking: the file is written (and compressed) as a stream. */
export async function dumpJoblib(value: unknown, filename: string | URL, options: DumpJoblibOptions = {}): Promise<string[]> {
  const where = 'dumpJoblib';
  const { target, compression } = parseArgs(filename, options, where);
  const parts = pickleForJoblib(value, compression === null, where);
  const temp = createTempBeside(target, where);
  try {
    const sink = createWriteStream('', { fd: temp.fd, autoClose: false });
    const source = Readable.from(partBytes(parts), { objectMode: false, highWaterMark: 1 });
    if (compression === null) await pipeline(source, sink);
    else if (compression.method === 'zlib' || compression.method === 'gzip') await pipeline(source, compressStream(compression), sink);
    else await pipeline(Readable.from([compressWhole(gather(parts, where, target), compression)]), sink);
    temp.commit();
  } catch (error) {
    temp.abort();
    throw error instanceof MemjobError ? error : systemError(where, error, target);
  }
  return [target];
}

function parseArgs(filename: string | URL, options: DumpJoblibOptions, where: string): { target: string; compression: JoblibCompression | null } {
  if (typeof options !== 'object' || options === null) throw invalidArg(where, 'options', 'an object', options);
  const target = parseFilename(filename, where);
  const compression = parseJoblibCompress(options.compress, target, where);
  if (compression?.method === 'bz2') {
    throw new MemjobError(
      ErrorCodes.INVALID_ARG,
      `${where}: expected "compress" to use 'zlib', 'gzip', 'lz4', 'xz' or 'lzma', received 'bz2': memjob reads bz2 files but cannot write them (no npm bzip2 encoder writes streams Python reads; native-notes/joblib-compression.md)`,
    );
  }
  return { target, compression };
}

/** The whole uncompressed pickle in one buffer, for the synchronous compressors. */
function gather(parts: readonly PicklePart[], where: string, target: string): Buffer {
  const total = parts.reduce((n, part) => n + (part instanceof Uint8Array ? part.length : part.nbytes), 0);
  if (total > maxViewBytes) {
    throw new MemjobError(
      ErrorCodes.VIEW_TOO_LARGE,
      `${where}: compressing ${total} bytes synchronously needs them in one Buffer, more than this Node can hold; use the async dumpJoblib(), which streams`,
      { path: target },
    );
  }
  return Buffer.concat([...partBytes(parts)], total);
}

/** The whole pickle compressed in one call: zlib and gzip by node:zlib, lz4, xz and lzma by joblib-compression.ts. */
function compressWhole(data: Buffer, { method, level }: JoblibCompression): Uint8Array {
  if (method === 'zlib' || method === 'gzip') {
    const options = { level: level ?? ZLIB_DEFAULT_LEVEL };
    return method === 'gzip' ? zlib.gzipSync(data, options) : zlib.deflateSync(data, options);
  }
  // joblib's defaults when no level is given: Python's lzma preset 6; lz4 has one level here.
  return compressJoblib(method, data, level ?? (method === 'lz4' ? 0 : LZMA_DEFAULT_PRESET));
}

function compressStream({ method, level }: JoblibCompression): zlib.Gzip | zlib.Deflate {
  const options = { level: level ?? ZLIB_DEFAULT_LEVEL };
  return method === 'gzip' ? zlib.createGzip(options) : zlib.createDeflate(options);
}
