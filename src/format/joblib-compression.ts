/**
 * The whole-file compressions of joblib files (joblib/numpy_pickle_utils.py and
 * compressor.py): detected by their first bytes as joblib detects them, each
 * decompressed into at most `limit` bytes, checked while decoding so that a
 * decompression bomb stops at the limit instead of filling memory. Which
 * packages do it, and why, is in native-notes/joblib-compression.md.
 *
 * zlib, gzip: node:zlib, with maxOutputLength.
 * bz2: seek-bzip, writing byte by byte into an output that refuses to grow past the limit.
 * xz, lzma ('alone'): memjob's LZMA decoder (lzma-decoder.ts, lzma-xz.ts), into the same output.
 * lz4 (frame): lz4-frame.ts, decoded here into the bounded output.
 * Writing: node:zlib and lz4-napi; xz and lzma through lzma-native (liblzma) when the user
 * installed it (an optional package: it has an install script); bz2 has no writer (no npm
 * encoder wrote files that Python's bz2 reads, see the notes).
 */
import { createRequire } from 'node:module';
import { promisify } from 'node:util';
import { constants as zlibConstants, deflateSync, gunzip, gunzipSync, gzipSync, inflate, inflateSync } from 'node:zlib';
import { ErrorCodes, MemjobError, describe } from '../errors.js';
import { isZfile } from './joblib-compat.js';
import { BoundedOutput, decodeLz4Frames } from './lz4-frame.js';
import { decodeLzmaAlone } from './lzma-decoder.js';
import { decodeXz } from './lzma-xz.js';

const inflateAsync = promisify(inflate);
const gunzipAsync = promisify(gunzip);
const require = createRequire(import.meta.url);

export type JoblibCompression = 'zlib' | 'gzip' | 'bz2' | 'xz' | 'lzma' | 'lz4';

/** The first bytes of each compression joblib writes (numpy_pickle_utils.py, _COMPRESSOR_MAGIC). */
const MAGIC: [JoblibCompression, number[]][] = [
  ['zlib', [0x78]],
  ['gzip', [0x1f, 0x8b]],
  ['bz2', [0x42, 0x5a, 0x68]],
  ['xz', [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]],
  ['lzma', [0x5d, 0x00]],
  ['lz4', [0x04, 0x22, 0x4d, 0x18]],
];

/** Compressions compressJoblib() can write (xz and lzma only with lzma-native installed). */
export const WRITABLE_COMPRESSIONS: readonly JoblibCompression[] = ['zlib', 'gzip', 'xz', 'lzma', 'lz4'];

/** The compression of a joblib file by its first bytes, as joblib detects it; undefined for a plain pickle. */
export function compressionOf(bytes: Uint8Array): JoblibCompression | undefined {
  if (bytes[0] === 0x80) return undefined; // PROTO: a pickle of protocol 2 or later
  return MAGIC.find(([, magic]) => magic.every((byte, i) => bytes[i] === byte))?.[0];
}

/**
 * What a file that is not a memjob dump looks like from its first bytes, when it looks like a
 * joblib.dump file: a pickle, or one of joblib's compressions (zlib and gzip only when the bytes
 * inflate to the start of a pickle: memjob's own compressed dumps use them too). For load()'s error.
 */
export function joblibLookalike(head: Uint8Array): string | undefined {
  const isPickle = (bytes: Uint8Array) => bytes[0] === 0x80 && bytes[1]! >= 2 && bytes[1]! <= 5;
  if (isPickle(head)) return `a Python pickle (protocol ${head[1]}), as joblib.dump writes them`;
  if (isZfile(head)) return "a joblib 0.8/0.9 compressed pickle ('ZF' header)";
  const method = compressionOf(head);
  if (method === 'zlib' || method === 'gzip') {
    try {
      // Z_SYNC_FLUSH: the prefix is decompressed as far as it goes, without "unexpected end of file".
      const start = (method === 'zlib' ? inflateSync : gunzipSync)(head, { finishFlush: zlibConstants.Z_SYNC_FLUSH });
      return isPickle(start) ? `a ${method}-compressed Python pickle, as joblib.dump(compress=...) writes them` : undefined;
    } catch {
      return undefined;
    }
  }
  return method === undefined ? undefined : `a ${method}-compressed file, as joblib.dump(compress='${method}') writes them (memjob's dumps never use ${method})`;
}

/** The decompression bomb's error (callers add the file's path). */
function tooLarge(method: string, limit: number): MemjobError {
  return new MemjobError(ErrorCodes.FORMAT, `expected a ${method} stream that decompresses to at most ${limit} bytes (maxDecompressedBytes), received more`);
}

function broken(method: string, error: unknown): MemjobError {
  // The limit's own error passes through; a decoder's says what it expected, inside this one.
  if (error instanceof MemjobError && error.message.includes('(maxDecompressedBytes)')) return error;
  const detail = error instanceof Error ? error.message : describe(error);
  return new MemjobError(ErrorCodes.FORMAT, `expected a whole ${method} stream, received a broken one: ${detail}`, { cause: error });
}

/** Output chunk of the async zlib inflate. */
const ASYNC_CHUNK = 1024 * 1024;

function zlibError(method: string, error: unknown, limit: number): MemjobError {
  const over = (error as { code?: unknown }).code === 'ERR_BUFFER_TOO_LARGE' || error instanceof RangeError;
  return over ? new MemjobError(ErrorCodes.FORMAT, tooLarge(method, limit).message, { cause: error }) : broken(method, error);
}

/**
 * `bytes` decompressed with `method`, into at most `limit` bytes; MEMJOB_ERR_FORMAT for a broken
 * stream or one that decompresses to more.
 */
export function decompressJoblib(method: JoblibCompression, bytes: Uint8Array, limit: number): Uint8Array {
  if (method === 'zlib' || method === 'gzip') {
    try {
      return (method === 'zlib' ? inflateSync : gunzipSync)(bytes, { maxOutputLength: limit });
    } catch (error) {
      throw zlibError(method, error, limit);
    }
  }
  const out = new BoundedOutput(limit, bytes.length * 4, () => tooLarge(method, limit));
  try {
    for (const _ of steps(method, bytes, out));
  } catch (error) {
    throw broken(method, error);
  }
  return out.result();
}

/** decompressJoblib, letting other work run between steps (xz/lzma chunks, lz4 blocks; bz2 decodes in one step). */
export async function decompressJoblibAsync(method: JoblibCompression, bytes: Uint8Array, limit: number): Promise<Uint8Array> {
  if (method === 'zlib' || method === 'gzip') {
    try {
      // 1 MiB output chunks: with zlib's default 16 KiB, the thread pool's hand-offs made a 256 MiB
      // file take 1.7x as long as inflateSync (measured 937 ms against 556 ms here).
      return await (method === 'zlib' ? inflateAsync : gunzipAsync)(bytes, { maxOutputLength: limit, chunkSize: ASYNC_CHUNK });
    } catch (error) {
      throw zlibError(method, error, limit);
    }
  }
  const out = new BoundedOutput(limit, bytes.length * 4, () => tooLarge(method, limit));
  try {
    for (const _ of steps(method, bytes, out)) await new Promise((resolve) => setImmediate(resolve));
  } catch (error) {
    throw broken(method, error);
  }
  return out.result();
}

function steps(method: JoblibCompression, bytes: Uint8Array, out: BoundedOutput): Iterable<void> {
  switch (method) {
    case 'bz2':
      return decodeBz2(bytes, out);
    case 'xz':
      return decodeXz(bytes, out);
    case 'lzma':
      return decodeLzmaAlone(bytes, out);
    case 'lz4':
      return decodeLz4Frames(bytes, out);
    default:
      throw new MemjobError(ErrorCodes.INTERNAL, `no decoder for ${method}`);
  }
}

// ---- bz2 (seek-bzip) ----

interface SeekBzip {
  decode(input: object, output: object, multistream?: boolean): unknown;
}

/** Every bzip2 stream of `bytes` (Python's bz2 reads concatenated streams). */
function* decodeBz2(bytes: Uint8Array, out: BoundedOutput): Generator<void, void, void> {
  const bunzip = require('seek-bzip') as SeekBzip;
  let pos = 0;
  // An input that throws at its end (seek-bzip's own reads undefined there and would go on with zeros),
  // and has no eof(), so that decode() stops only at a stream's end marker after checking its CRC.
  const input = {
    readByte(): number {
      if (pos >= bytes.length) throw new Error('unexpected end of the data');
      return bytes[pos++]!;
    },
    read(buffer: Uint8Array, offset: number, n: number): number {
      for (let i = 0; i < n; i++) buffer[offset + i] = this.readByte();
      return n;
    },
  };
  do {
    bunzip.decode(input, out, false);
    yield;
    // Each stream ends byte-aligned: what is left is another stream or garbage.
  } while (pos < bytes.length);
}

// ---- xz and lzma: lzma-decoder.ts and lzma-xz.ts; writing through lzma-native, when installed ----

interface LzmaNativeStream {
  bufferHandler: (buf: Buffer | null | undefined, processed: number | null | undefined, err: Error | null | undefined) => void;
  code(chunk: Buffer | null, async: boolean): void;
  easyEncoder_(preset: number, check: number): void;
  aloneEncoder(options: { preset: number }): void;
  resetUnderlying(): void;
}

interface LzmaNative {
  Stream: new () => LzmaNativeStream;
  CHECK_CRC64: number;
}

// ---- writing ----

/**
 * `bytes` compressed as joblib.dump(..., compress=(method, level)) compresses a whole file. `level`
 * is 0 to 9 (lz4 has no levels here: lz4-napi writes its one speed). bz2 cannot be written; xz and
 * lzma need lzma-native (MEMJOB_ERR_INVALID_ARG naming it when it is not installed).
 */
export function compressJoblib(method: JoblibCompression, bytes: Uint8Array, level: number): Uint8Array {
  if (!Number.isInteger(level) || level < 0 || level > 9) {
    throw new MemjobError(ErrorCodes.INVALID_ARG, `compressJoblib: expected a compression level from 0 to 9, received ${describe(level)}`);
  }
  switch (method) {
    case 'zlib':
      return deflateSync(bytes, { level });
    case 'gzip':
      return gzipSync(bytes, { level });
    case 'xz':
    case 'lzma':
      return encodeLzma(method, bytes, level);
    case 'lz4':
      return (require('lz4-napi') as { compressFrameSync(data: Buffer): Buffer }).compressFrameSync(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    default:
      throw new MemjobError(
        ErrorCodes.INVALID_ARG,
        `compressJoblib: expected a compression memjob can write (${WRITABLE_COMPRESSIONS.join(', ')}), received ${describe(method)}` +
          (method === 'bz2' ? ' (no npm bzip2 encoder writes files that Python reads; memjob reads bz2 only)' : ''),
      );
  }
}

function encodeLzma(method: 'xz' | 'lzma', bytes: Uint8Array, level: number): Uint8Array {
  let lzma: LzmaNative;
  try {
    lzma = require('lzma-native') as LzmaNative;
  } catch (error) {
    throw new MemjobError(
      ErrorCodes.INVALID_ARG,
      `compressJoblib: expected the optional package lzma-native to write ${method} (npm install lzma-native; memjob reads ${method} without it), received: ${(error as Error).message}`,
      { cause: error },
    );
  }
  const stream = new lzma.Stream();
  const chunks: Buffer[] = [];
  let failure: Error | null = null;
  stream.bufferHandler = (buf, processed, err) => {
    if (err) failure ??= err;
    else if (typeof processed !== 'number' && buf != null) chunks.push(buf);
  };
  // As Python's lzma module: xz with a CRC64 check, 'alone' with the preset's options.
  if (method === 'xz') stream.easyEncoder_(level, lzma.CHECK_CRC64);
  else stream.aloneEncoder({ preset: level });
  try {
    stream.code(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), false);
    stream.code(null, false);
  } finally {
    stream.resetUnderlying();
  }
  if (failure !== null) throw new MemjobError(ErrorCodes.INTERNAL, `compressJoblib: liblzma failed: ${(failure as Error).message}`, { cause: failure });
  return Buffer.concat(chunks);
}
