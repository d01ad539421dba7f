/**
 * The members of a zip archive (a .npz), listed by yauzl from the central
 * directory and each member's local header, without reading any member's
 * data: where its bytes start in the file, how many there are, and how they
 * are stored. yauzl is driven through a reader of our own so that the same
 * code serves loadNpzSync (reads answered synchronously, yauzl's callbacks
 * then run before fromRandomAccessReader returns) and loadNpz (reads in the
 * thread pool). Every offset and size is checked against the file before the
 * caller maps or allocates anything (native-notes/npz-zip.md says why yauzl).
 */
import { read, readSync } from 'node:fs';
import { createRequire } from 'node:module';
import { ErrorCodes, MemjobError } from '../errors.js';

export interface ZipMember {
  /** The name as Python's zipfile decodes it: UTF-8 when flagged, else cp437. Never a path to write to. */
  name: string;
  /** 0 stored, 8 deflated (anything else is refused). */
  method: 0 | 8;
  crc32: number;
  compressedSize: number;
  uncompressedSize: number;
  /** File offset of the member's first data byte (after its local header). */
  dataStart: number;
}

// ---- the part of yauzl's API used here (it ships no types) ----
interface YauzlEntry {
  generalPurposeBitFlag: number;
  compressionMethod: number;
  crc32: number;
  compressedSize: number;
  uncompressedSize: number;
  relativeOffsetOfLocalHeader: number;
  fileNameRaw: Buffer;
  extraFields: unknown[];
  isEncrypted(): boolean;
}
interface YauzlZipFile {
  entryCount: number;
  readEntryCursor: number;
  on(event: 'entry', listener: (entry: YauzlEntry) => void): void;
  on(event: 'error', listener: (error: Error) => void): void;
  readEntry(): void;
  readLocalFileHeader(entry: YauzlEntry, options: { minimal: true }, callback: (error: Error | null, header?: { fileDataStart: number }) => void): void;
}
type ReadCallback = (error: Error | null, bytesRead?: number) => void;
interface RandomAccessReaderClass {
  new (): { read(buffer: Buffer, offset: number, length: number, position: number, callback: ReadCallback): void; close(callback: (error: Error | null) => void): void };
}
interface Yauzl {
  RandomAccessReader: RandomAccessReaderClass;
  fromRandomAccessReader(reader: object, totalSize: number, options: object, callback: (error: Error | null, zipfile?: YauzlZipFile) => void): void;
  getFileNameLowLevel(flags: number, raw: Buffer, extraFields: unknown[], strictFileNames: boolean): string;
}
const yauzl = createRequire(import.meta.url)('yauzl') as Yauzl;

/** yauzl reads 46 bytes, then a name, for each entry: a cached block turns those into one pread per block. */
const BLOCK_BYTES = 16 * 1024;

/**
 * Answers yauzl's reads from `fd`, synchronously or in the thread pool. It
 * does not own the fd (the caller closes it), and it never reads past
 * `size`: a read beyond the end reports fewer bytes, which yauzl turns into
 * "unexpected EOF".
 */
class FdReader extends yauzl.RandomAccessReader {
  readonly #fd: number;
  readonly #size: number;
  readonly #sync: boolean;
  #block = Buffer.alloc(0);
  #blockStart = 0;

  constructor(fd: number, size: number, sync: boolean) {
    super();
    this.#fd = fd;
    this.#size = size;
    this.#sync = sync;
  }

  override read(buffer: Buffer, offset: number, length: number, position: number, callback: ReadCallback): void {
    const serve = () => {
      const from = position - this.#blockStart;
      const n = this.#block.copy(buffer, offset, from, Math.min(from + length, this.#block.length));
      callback(null, n);
    };
    if (position >= this.#blockStart && position + length <= this.#blockStart + this.#block.length) return serve();
    const want = Math.max(0, Math.min(Math.max(length, BLOCK_BYTES), this.#size - position));
    const block = Buffer.alloc(want);
    this.#blockStart = position;
    if (this.#sync || want === 0) {
      try {
        this.#block = block.subarray(0, want === 0 ? 0 : readSync(this.#fd, block, 0, want, position));
      } catch (error) {
        return callback(error as Error);
      }
      return serve();
    }
    read(this.#fd, block, 0, want, position, (error, n) => {
      if (error) return callback(error);
      this.#block = block.subarray(0, n);
      serve();
    });
  }

  override close(callback: (error: Error | null) => void): void {
    callback(null);
  }
}

export interface ZipContext {
  where: string;
  path: string;
}

export function zipError(ctx: ZipContext, reason: string): MemjobError {
  return new MemjobError(ErrorCodes.FORMAT, `${ctx.where}: expected a zip archive (numpy's .npz), received '${ctx.path}', in which ${reason}`, {
    path: ctx.path,
  });
}

/** listZipMembers() with every read done before it returns. */
export function listZipMembersSync(fd: number, size: number, ctx: ZipContext): ZipMember[] {
  let result: { error: unknown; members?: ZipMember[] } | undefined;
  listZipMembersWith(new FdReader(fd, size, true), size, ctx, (error, members) => (result = { error, members }));
  // yauzl defers only zero-length reads (an entry with an empty name and no extra field): refuse those archives.
  if (result === undefined) throw zipError(ctx, 'a member has an empty name');
  if (result.error !== null) throw result.error;
  return result.members!;
}

export function listZipMembers(fd: number, size: number, ctx: ZipContext): Promise<ZipMember[]> {
  return new Promise((resolve, reject) =>
    listZipMembersWith(new FdReader(fd, size, false), size, ctx, (error, members) => (error === null ? resolve(members!) : reject(error))),
  );
}

function listZipMembersWith(reader: object, size: number, ctx: ZipContext, done: (error: unknown, members?: ZipMember[]) => void): void {
  let finished = false;
  const finish = (error: unknown, members?: ZipMember[]) => {
    if (finished) return;
    finished = true;
    done(error, members);
  };
  const fail = (error: unknown) => finish(error instanceof MemjobError ? error : zipError(ctx, `yauzl reports: ${(error as Error).message}`));
  // The shortest archive is a 22-byte end record; yauzl would defer the read of an empty file.
  if (size < 22) return fail(zipError(ctx, `there is no end of central directory record (the file holds ${size} bytes, a zip at least 22)`));
  const options = { lazyEntries: true, autoClose: false, decodeStrings: false, validateEntrySizes: true };
  yauzl.fromRandomAccessReader(reader, size, options, (error, zipfile) => {
    if (error !== null) return fail(error);
    const zip = zipfile!;
    const entries: YauzlEntry[] = [];
    // Before the first entry is read, the cursor is the central directory's offset.
    const directoryStart = zip.readEntryCursor;
    zip.on('error', fail);
    zip.on('entry', (entry) => {
      try {
        checkEntry(entry, ctx);
      } catch (bad) {
        return fail(bad);
      }
      entries.push(entry);
      // The end of the directory is known from the count: yauzl's 'end' event would come a tick later.
      if (entries.length < zip.entryCount) readNext();
      else locateData(zip, entries, directoryStart, ctx, finish, fail);
    });
    const readNext = trampoline(() => zip.readEntry());
    if (zip.entryCount === 0) return finish(null, []);
    readNext();
  });
}

/**
 * `step` run again each time the returned function is called, but never
 * nested: with synchronous reads yauzl calls back before returning, and one
 * nested call per member would overflow the stack on a large archive.
 */
function trampoline(step: () => void): () => void {
  let running = false;
  let again = false;
  return () => {
    again = true;
    if (running) return;
    running = true;
    try {
      while (again) {
        again = false;
        step();
      }
    } finally {
      running = false;
    }
  };
}

function checkEntry(entry: YauzlEntry, ctx: ZipContext): void {
  const name = JSON.stringify(entry.fileNameRaw.toString('latin1').slice(0, 80));
  // loadNpzSync cannot see such an entry (yauzl defers its zero-length read), so neither form accepts it; no writer makes one.
  if (entry.fileNameRaw.length === 0) throw zipError(ctx, 'a member has an empty name');
  if (entry.isEncrypted()) throw zipError(ctx, `member ${name} is encrypted (numpy writes no encrypted members)`);
  if (entry.compressionMethod !== 0 && entry.compressionMethod !== 8) {
    throw zipError(ctx, `member ${name} uses compression method ${entry.compressionMethod}; expected 0 (stored, np.savez) or 8 (deflated, np.savez_compressed)`);
  }
}

/** Reads each member's local header, one after the other, for the offset of its data. */
function locateData(zip: YauzlZipFile, entries: YauzlEntry[], directoryStart: number, ctx: ZipContext, finish: (error: unknown, members?: ZipMember[]) => void, fail: (error: unknown) => void): void {
  const members: ZipMember[] = [];
  const next = trampoline((): void => {
    const i = members.length;
    if (i === entries.length) {
      try {
        checkNoOverlap(entries, members, directoryStart, ctx);
      } catch (bad) {
        return fail(bad);
      }
      return finish(null, members);
    }
    const entry = entries[i]!;
    // yauzl checks that fileDataStart + compressedSize lies inside the file.
    zip.readLocalFileHeader(entry, { minimal: true }, (error, header) => {
      if (error !== null) return fail(error);
      members.push({
        name: yauzl.getFileNameLowLevel(entry.generalPurposeBitFlag, entry.fileNameRaw, entry.extraFields, true),
        method: entry.compressionMethod as 0 | 8,
        crc32: entry.crc32,
        compressedSize: entry.compressedSize,
        uncompressedSize: entry.uncompressedSize,
        dataStart: header!.fileDataStart,
      });
      next();
    });
  });
  next();
}

/**
 * Members whose bytes overlap (each other, or the central directory) are how
 * the worst zip bombs multiply one compressed stream into thousands of
 * members; no zip writer produces them, so they are refused.
 */
function checkNoOverlap(entries: YauzlEntry[], members: ZipMember[], directoryStart: number, ctx: ZipContext): void {
  const spans = members
    .map((m, i) => ({ name: m.name, start: entries[i]!.relativeOffsetOfLocalHeader, end: m.dataStart + m.compressedSize }))
    .sort((a, b) => a.start - b.start);
  for (let i = 1; i < spans.length; i++) {
    if (spans[i]!.start < spans[i - 1]!.end) {
      throw zipError(ctx, `members ${JSON.stringify(spans[i - 1]!.name)} and ${JSON.stringify(spans[i]!.name)} overlap (bytes ${spans[i]!.start} to ${spans[i - 1]!.end}); expected disjoint members`);
    }
  }
  const last = spans[spans.length - 1];
  if (last !== undefined && last.end > directoryStart) {
    throw zipError(ctx, `member ${JSON.stringify(last.name)} ends at byte ${last.end}, inside the central directory (which starts at byte ${directoryStart}); expected members before it`);
  }
}
