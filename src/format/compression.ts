/**
 * Compression of whole dump files through node:zlib, as joblib compresses
 * its pickles: the compressed file is the uncompressed format run through
 * gzip, zlib (deflate) or brotli, so `gunzip file.gz` gives a plain dump.
 */
import { extname } from 'node:path';
import * as zlib from 'node:zlib';
import { ErrorCodes, MemjobError, describe } from '../errors.js';

export type CompressMethod = 'gzip' | 'zlib' | 'brotli';
/** `true` (zlib, level 3, joblib's default), a level 0-9 (zlib), a method, or [method, level]. */
export type CompressOption = boolean | number | CompressMethod | readonly [CompressMethod, number];

export interface Compression {
  method: CompressMethod;
  level: number;
}

const DEFAULT_LEVEL = 3;
const methods: readonly CompressMethod[] = ['gzip', 'zlib', 'brotli'];
const byExtension: Record<string, CompressMethod> = { '.gz': 'gzip', '.z': 'zlib', '.br': 'brotli' };

function parseLevel(level: unknown, where: string): number {
  if (Number.isInteger(level) && (level as number) >= 0 && (level as number) <= 9) return level as number;
  throw new MemjobError(ErrorCodes.INVALID_ARG, `${where}: expected a compression level from 0 to 9, received ${describe(level)}`);
}

/**
 * What `compress` asks for, or null for none. As in joblib, a filename ending
 * in .gz, .z or .br picks the method when the option does not name one.
 */
export function parseCompress(option: unknown, filename: string, where: string): Compression | null {
  const fromName = byExtension[extname(filename).toLowerCase()];
  let method: CompressMethod | undefined;
  let level: number | undefined;
  if (option === undefined || option === false) {
    level = fromName === undefined ? 0 : DEFAULT_LEVEL;
  } else if (option === true) {
    level = DEFAULT_LEVEL;
  } else if (typeof option === 'number') {
    // As joblib: 0 with a .gz/.z/.br filename still compresses, at the default level.
    level = parseLevel(option, where);
    if (level === 0 && fromName !== undefined) level = DEFAULT_LEVEL;
  } else if (typeof option === 'string' && methods.includes(option as CompressMethod)) {
    method = option as CompressMethod;
    level = DEFAULT_LEVEL;
  } else if (Array.isArray(option) && option.length === 2 && methods.includes(option[0] as CompressMethod)) {
    method = option[0] as CompressMethod;
    level = parseLevel(option[1], where);
  } else {
    throw new MemjobError(
      ErrorCodes.INVALID_ARG,
      `${where}: expected "compress" to be true, a level 0-9, 'gzip', 'zlib', 'brotli' or [method, level], received ${describe(option)}`,
    );
  }
  if (level === 0) return null;
  return { method: method ?? fromName ?? 'zlib', level };
}

/** A compressing transform stream for `compression`. */
export function compressor(compression: Compression): zlib.Gzip | zlib.Deflate | zlib.BrotliCompress {
  const { method, level } = compression;
  if (method === 'gzip') return zlib.createGzip({ level });
  if (method === 'zlib') return zlib.createDeflate({ level });
  return zlib.createBrotliCompress({ params: { [zlib.constants.BROTLI_PARAM_QUALITY]: level } });
}

export function compressSync(data: Buffer, compression: Compression): Buffer {
  const { method, level } = compression;
  if (method === 'gzip') return zlib.gzipSync(data, { level });
  if (method === 'zlib') return zlib.deflateSync(data, { level });
  return zlib.brotliCompressSync(data, { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: level } });
}

/**
 * Which method a file's first bytes show. gzip and zlib have signatures;
 * brotli has none, so anything else is tried as brotli and the memjob magic
 * of what comes out decides (load reports a clear error if it is missing).
 */
export function detectMethod(head: Uint8Array): CompressMethod {
  if (head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  const [cmf, flg] = [head[0] ?? 0, head[1] ?? 0];
  if ((cmf & 0x0f) === 8 && cmf >> 4 <= 7 && ((cmf << 8) | flg) % 31 === 0) return 'zlib';
  return 'brotli';
}

export function decompressor(method: CompressMethod): zlib.Gunzip | zlib.Inflate | zlib.BrotliDecompress {
  if (method === 'gzip') return zlib.createGunzip();
  if (method === 'zlib') return zlib.createInflate();
  return zlib.createBrotliDecompress();
}

/** Decompresses all of `data`; output beyond `maxOutputLength` bytes throws ERR_BUFFER_TOO_LARGE. */
export function decompressSync(data: Buffer, method: CompressMethod, maxOutputLength: number): Buffer {
  // zlib wants at least 1: an exactly empty output is then checked by the caller.
  const options = { maxOutputLength: Math.max(1, maxOutputLength) };
  if (method === 'gzip') return zlib.gunzipSync(data, options);
  if (method === 'zlib') return zlib.inflateSync(data, options);
  return zlib.brotliDecompressSync(data, options);
}

/**
 * The first `length` decompressed bytes (fewer if the stream is shorter),
 * from growing prefixes of the input, so memory stays small however well
 * the rest compresses.
 */
export function decompressPrefix(data: Buffer, method: CompressMethod, length: number): Buffer {
  for (let input = 256; ; input *= 8) {
    const part = data.subarray(0, input);
    let out: Buffer;
    try {
      if (method === 'brotli') {
        out = zlib.brotliDecompressSync(part, { finishFlush: zlib.constants.BROTLI_OPERATION_FLUSH, maxOutputLength: 64 << 20 });
      } else {
        const options = { finishFlush: zlib.constants.Z_SYNC_FLUSH, maxOutputLength: 64 << 20 };
        out = method === 'gzip' ? zlib.gunzipSync(part, options) : zlib.inflateSync(part, options);
      }
    } catch (error) {
      // 256 bytes of input that inflate past 64 MiB hold the header long before that.
      if ((error as { code?: unknown }).code !== 'ERR_BUFFER_TOO_LARGE') throw error;
      return decompressPrefix(data.subarray(0, Math.max(16, input / 16)), method, length);
    }
    if (out.length >= length || part.length === data.length) return out.subarray(0, length);
  }
}
