/**
 * saveNpz() and saveNpzSync(): numpy's .npz as np.savez writes it (the zip
 * records are zip-write.ts's), the .npy members streamed from each array's
 * own memory in pieces, atomically like saveNpy. One generator yields the
 * writes (and deflates); npz.ts's drivers answer them, synchronously or in
 * the thread pool.
 */
import { fsync, ftruncate, ftruncateSync } from 'node:fs';
import { promisify } from 'node:util';
import { constants as zlibConstants, crc32, deflateRaw, deflateRawSync } from 'node:zlib';
import { MemjobError, invalidArg, systemError } from '../errors.js';
import { parseFilename } from '../system/filename.js';
import type { TypedArray } from '../memmap/dtype.js';
import type { Memmap } from '../memmap/memmap.js';
import type { NDArray } from '../memmap/ndarray.js';
import { createTempBeside, writeAll, writeAllSync } from './atomic-file.js';
import { sourceOf, type SaveSource } from './npy.js';
import { runAsync, runSync } from './npz.js';
import { centralDirectory, localHeader, localHeaderLength, type ZipEntryRecord } from './zip-write.js';

export interface SaveNpzOptions {
  /** Deflate the members, as np.savez_compressed (default false: stored, as np.savez, and mappable). */
  compress?: boolean;
}

/** What saveNpz takes: named arrays, or a list saved as arr_0, arr_1, ... (numpy's positional arguments). */
export type NpzArrays = Readonly<Record<string, TypedArray | NDArray | Memmap>> | readonly (TypedArray | NDArray | Memmap)[];

/** Compressed and written in pieces of at most this many bytes, so no copy of a whole array is ever made. */
const PIECE_BYTES = 64 * 1024 ** 2;
/** An empty final deflate block: what ends a raw deflate stream made of Z_SYNC_FLUSH pieces. */
const FINAL_BLOCK = Buffer.from([0x03, 0x00]);

type SaveRequest = { write: [bytes: Uint8Array, position: number] } | { deflate: Uint8Array };

const deflateAsync = promisify(deflateRaw);
const fsyncAsync = promisify(fsync);
const ftruncateAsync = promisify(ftruncate);

/** Writes `arrays` to `filename` as np.savez (or, with `compress`, np.savez_compressed) would, atomically. */
export function saveNpzSync(filename: string | URL, arrays: NpzArrays, options: SaveNpzOptions = {}): void {
  const where = 'saveNpzSync';
  const { path, compress, sources } = parseSaveArgs(filename, arrays, options, where);
  const temp = createTempBeside(path, where);
  try {
    const size = runSync(saveMembers(sources, compress), (request) => {
      if ('deflate' in request) return deflateRawSync(request.deflate, { finishFlush: zlibConstants.Z_SYNC_FLUSH });
      writeAllSync(temp.fd, ...request.write);
      return undefined;
    });
    ftruncateSync(temp.fd, size);
    temp.commit();
  } catch (error) {
    temp.abort();
    throw error instanceof MemjobError ? error : systemError(where, error, path);
  }
}

/** saveNpzSync() with the writes, the compression and the fsync done in Node's thread pool. */
export async function saveNpz(filename: string | URL, arrays: NpzArrays, options: SaveNpzOptions = {}): Promise<void> {
  const where = 'saveNpz';
  const { path, compress, sources } = parseSaveArgs(filename, arrays, options, where);
  const temp = createTempBeside(path, where);
  try {
    const size = await runAsync(saveMembers(sources, compress), async (request) => {
      if ('deflate' in request) return deflateAsync(request.deflate, { finishFlush: zlibConstants.Z_SYNC_FLUSH });
      await writeAll(temp.fd, ...request.write);
      return undefined;
    });
    await ftruncateAsync(temp.fd, size);
    await fsyncAsync(temp.fd); // commit() fsyncs again, on the event loop; by then nothing is left to flush
    temp.commit();
  } catch (error) {
    temp.abort();
    throw error instanceof MemjobError ? error : systemError(where, error, path);
  }
}

function parseSaveArgs(filename: string | URL, arrays: unknown, options: unknown, where: string): { path: string; compress: boolean; sources: [string, SaveSource][] } {
  const path = parseFilename(filename, where);
  if (typeof options !== 'object' || options === null) throw invalidArg(where, 'options', 'an object', options);
  const compress = (options as SaveNpzOptions).compress ?? false;
  if (typeof compress !== 'boolean') throw invalidArg(where, 'compress', 'true or false', compress);
  if (typeof arrays !== 'object' || arrays === null || ArrayBuffer.isView(arrays)) {
    throw invalidArg(where, 'arrays', 'a record of arrays, or a list of arrays (saved as arr_0, arr_1, ...)', arrays);
  }
  const entries = Array.isArray(arrays) ? arrays.map((a, i) => [`arr_${i}`, a] as const) : Object.entries(arrays);
  // Every array is checked before the temp file exists.
  const sources = entries.map(([key, array]): [string, SaveSource] => {
    if (key.includes('\0')) throw invalidArg(where, 'arrays', 'keys without NUL characters (zipfile cuts a name at the first one)', key);
    return [`${key}.npy`, sourceOf(array, `${where}: "${key}"`)];
  });
  return { path, compress, sources };
}

/** Yields the writes (and, compressing, the deflating) of a whole archive; returns its size. */
function* saveMembers(sources: readonly [string, SaveSource][], compress: boolean): Generator<SaveRequest, number, Uint8Array | undefined> {
  const records: ZipEntryRecord[] = [];
  let position = 0;
  for (const [name, source] of sources) {
    const headerOffset = position;
    let at = headerOffset + localHeaderLength(name); // the local header is written last, once its CRC and sizes are known
    let crc = 0;
    let size = 0;
    for (const block of [source.header, ...source.blocks]) {
      for (let from = 0; from < block.length; from += PIECE_BYTES) {
        const piece = block.subarray(from, from + PIECE_BYTES);
        crc = crc32(piece, crc);
        size += piece.length;
        const out = compress ? (yield { deflate: piece })! : piece;
        yield { write: [out, at] };
        at += out.length;
      }
    }
    if (compress) {
      yield { write: [FINAL_BLOCK, at] };
      at += FINAL_BLOCK.length;
    }
    const record: ZipEntryRecord = { name, method: compress ? 8 : 0, crc32: crc, compressedSize: at - headerOffset - localHeaderLength(name), uncompressedSize: size, headerOffset };
    yield { write: [localHeader(record), headerOffset] };
    records.push(record);
    position = at;
  }
  const directory = centralDirectory(records, position);
  yield { write: [directory, position] };
  return position + directory.length;
}
