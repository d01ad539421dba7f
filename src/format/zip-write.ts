/**
 * The zip records np.savez writes, byte for byte: numpy opens each member
 * with Python's `ZipFile.open(name, 'w', force_zip64=True)`, so every local
 * header carries a ZIP64 extra field (sizes in 8 bytes) whatever the size,
 * the date is zipfile's default 1980-01-01 00:00, the mode 0600 and the
 * "made by" Unix; the central directory and the end records use ZIP64 only
 * past 2^31 - 1 (zipfile's ZIP64_LIMIT) or 65,535 members, as zipfile does
 * (/usr/lib/python3.11/zipfile.py: FileHeader, _write_end_record). Only the
 * records: npz.ts streams the data between them.
 */

/** Python's zipfile.ZIP64_LIMIT: sizes and offsets above it move to the ZIP64 extra field. */
const ZIP64_LIMIT = 2 ** 31 - 1;
const ZIP_FILECOUNT_LIMIT = 0xffff;
const DEFAULT_VERSION = 20;
const ZIP64_VERSION = 45;
const DOS_DATE_1980_01_01 = (1 << 5) | 1;
/** (0o600 << 16): '-rw-------', what ZipFile.open(..., 'w') gives a member. */
const EXTERNAL_ATTR = 0o600 * 0x10000;
const MADE_BY_UNIX = 3 << 8;
const UTF8_NAME_FLAG = 0x800;

export interface ZipEntryRecord {
  /** The member's name, already including '.npy'. */
  name: string;
  method: 0 | 8;
  crc32: number;
  compressedSize: number;
  uncompressedSize: number;
  /** File offset of the local header. */
  headerOffset: number;
}

/** The name's bytes and flags as zipfile's _encodeFilenameFlags: ASCII, else UTF-8 with bit 11 set. */
function encodeName(name: string): { bytes: Buffer; flags: number } {
  const ascii = /^[\x00-\x7f]*$/.test(name);
  return { bytes: Buffer.from(name, ascii ? 'latin1' : 'utf8'), flags: ascii ? 0 : UTF8_NAME_FLAG };
}

/** The local header's length for `name` (fixed: the ZIP64 extra is always there), so data can follow it before it is final. */
export function localHeaderLength(name: string): number {
  return 30 + encodeName(name).bytes.length + 20;
}

/** A member's local header, as zipfile's FileHeader(zip64=True) writes it once the sizes and CRC are known. */
export function localHeader(entry: ZipEntryRecord): Buffer {
  const { bytes, flags } = encodeName(entry.name);
  const large = entry.uncompressedSize > ZIP64_LIMIT || entry.compressedSize > ZIP64_LIMIT;
  const out = Buffer.alloc(30 + bytes.length + 20);
  out.writeUInt32LE(0x04034b50, 0);
  out.writeUInt16LE(large ? ZIP64_VERSION : DEFAULT_VERSION, 4);
  out.writeUInt16LE(flags, 6);
  out.writeUInt16LE(entry.method, 8);
  out.writeUInt16LE(0, 10); // time 00:00:00
  out.writeUInt16LE(DOS_DATE_1980_01_01, 12);
  out.writeUInt32LE(entry.crc32, 14);
  out.writeUInt32LE(large ? 0xffffffff : entry.compressedSize, 18);
  out.writeUInt32LE(large ? 0xffffffff : entry.uncompressedSize, 22);
  out.writeUInt16LE(bytes.length, 26);
  out.writeUInt16LE(20, 28);
  bytes.copy(out, 30);
  const extra = 30 + bytes.length;
  out.writeUInt16LE(1, extra); // ZIP64 extended information
  out.writeUInt16LE(16, extra + 2);
  out.writeBigUInt64LE(BigInt(entry.uncompressedSize), extra + 4);
  out.writeBigUInt64LE(BigInt(entry.compressedSize), extra + 12);
  return out;
}

/** The central directory, ZIP64 end records where zipfile writes them, and the end record. */
export function centralDirectory(entries: readonly ZipEntryRecord[], directoryOffset: number): Buffer {
  const parts: Buffer[] = [];
  for (const entry of entries) {
    const { bytes, flags } = encodeName(entry.name);
    const large = entry.uncompressedSize > ZIP64_LIMIT || entry.compressedSize > ZIP64_LIMIT;
    const far = entry.headerOffset > ZIP64_LIMIT;
    const extra: number[] = [];
    if (large) extra.push(entry.uncompressedSize, entry.compressedSize);
    if (far) extra.push(entry.headerOffset);
    const version = extra.length > 0 ? ZIP64_VERSION : DEFAULT_VERSION;
    const extraBytes = extra.length === 0 ? 0 : 4 + 8 * extra.length;
    const out = Buffer.alloc(46 + bytes.length + extraBytes);
    out.writeUInt32LE(0x02014b50, 0);
    out.writeUInt16LE(MADE_BY_UNIX | version, 4);
    out.writeUInt16LE(version, 6);
    out.writeUInt16LE(flags, 8);
    out.writeUInt16LE(entry.method, 10);
    out.writeUInt16LE(0, 12);
    out.writeUInt16LE(DOS_DATE_1980_01_01, 14);
    out.writeUInt32LE(entry.crc32, 16);
    out.writeUInt32LE(large ? 0xffffffff : entry.compressedSize, 20);
    out.writeUInt32LE(large ? 0xffffffff : entry.uncompressedSize, 24);
    out.writeUInt16LE(bytes.length, 28);
    out.writeUInt16LE(extraBytes, 30);
    // 32 comment length, 34 disk number, 36 internal attributes: 0
    out.writeUInt32LE(EXTERNAL_ATTR, 38);
    out.writeUInt32LE(far ? 0xffffffff : entry.headerOffset, 42);
    bytes.copy(out, 46);
    if (extra.length > 0) {
      let at = 46 + bytes.length;
      out.writeUInt16LE(1, at);
      out.writeUInt16LE(8 * extra.length, at + 2);
      for (const value of extra) out.writeBigUInt64LE(BigInt(value), (at += 8) - 4);
    }
    parts.push(out);
  }
  const directorySize = parts.reduce((n, p) => n + p.length, 0);
  const count = entries.length;
  if (count > ZIP_FILECOUNT_LIMIT || directoryOffset > ZIP64_LIMIT || directorySize > ZIP64_LIMIT) {
    const end64 = Buffer.alloc(56 + 20);
    end64.writeUInt32LE(0x06064b50, 0);
    end64.writeBigUInt64LE(44n, 4);
    end64.writeUInt16LE(ZIP64_VERSION, 12);
    end64.writeUInt16LE(ZIP64_VERSION, 14);
    end64.writeBigUInt64LE(BigInt(count), 24);
    end64.writeBigUInt64LE(BigInt(count), 32);
    end64.writeBigUInt64LE(BigInt(directorySize), 40);
    end64.writeBigUInt64LE(BigInt(directoryOffset), 48);
    // The locator: where the record above starts.
    end64.writeUInt32LE(0x07064b50, 56);
    end64.writeBigUInt64LE(BigInt(directoryOffset + directorySize), 64);
    end64.writeUInt32LE(1, 72);
    parts.push(end64);
  }
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(Math.min(count, 0xffff), 8);
  end.writeUInt16LE(Math.min(count, 0xffff), 10);
  end.writeUInt32LE(Math.min(directorySize, 0xffffffff), 12);
  end.writeUInt32LE(Math.min(directoryOffset, 0xffffffff), 16);
  parts.push(end);
  return Buffer.concat(parts);
}
