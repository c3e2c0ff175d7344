/**
 * Reading RocksDB's write-ahead log from outside RocksDB: what a reader-mode shard learns of the writes its views do
 * not hold yet, without reopening them (see src/wal-tail.ts). Only what rockvisor's writes put in a log is understood;
 * anything else ends the reading with a reason, and the caller reopens its view instead.
 *
 * The format (RocksDB's log_format.md and write_batch.cc): the log is a sequence of 32 KiB blocks; a block holds
 * records (header: masked CRC32C of type and payload, 4 bytes LE; payload length, 2 bytes LE; type, 1 byte), and a
 * block's last bytes, fewer than a header, are padding. A write batch is one record (FULL) or split over several
 * (FIRST, MIDDLE..., LAST). A write batch: RocksDB's sequence (8 bytes LE), its count (4 bytes LE), then its
 * operations, each a tag byte and varint32-length-prefixed slices: 0x01 put (key, value), 0x00 deletion (key), 0x0F
 * range deletion (start, end); the column-family forms (0x05, 0x04, 0x0E) carry a varint32 family first.
 */
import type { WriteOp } from './engine.js'
import { decodeSequence, sequenceKey } from './keys.js'

/** Bytes per block of a log. */
export const blockSize = 32 * 1024
/** Bytes of a record's header (the format without log recycling, RocksDB's default). */
export const headerSize = 7

/**
 * CRC32C lookup tables, eight of 256 entries: table 0 is the CRC of a byte, table k the CRC of a byte followed by k
 * zero bytes, so that eight bytes are folded in one step ("slicing by 8"; a tail poll checks every byte the writer
 * appended since the last, and this took 0.20 to 0.25 ms on 111 KB of log where a byte at a time took 0.35 ms).
 */
const crcTables = (() => {
  const t = new Int32Array(8 * 256)
  for (let n = 0; n < 256; n++) {
    let c = n
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1
    t[n] = c
  }
  for (let n = 0; n < 256; n++) {
    let c = t[n]!
    for (let k = 1; k < 8; k++) {
      c = t[c & 0xff]! ^ (c >>> 8)
      t[k * 256 + n] = c
    }
  }
  return t
})()

/** CRC32C (Castagnoli) of `bytes[from, to)`, continuing from `crc` (0 to start). */
export const crc32c = (bytes: Uint8Array, from = 0, to = bytes.length, crc = 0): number => {
  const t = crcTables
  let c = ~crc
  let i = from
  for (; i + 8 <= to; i += 8) {
    const lo = c ^ (bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24))
    const hi = bytes[i + 4]! | (bytes[i + 5]! << 8) | (bytes[i + 6]! << 16) | (bytes[i + 7]! << 24)
    c =
      t[1792 + (lo & 0xff)]! ^
      t[1536 + ((lo >>> 8) & 0xff)]! ^
      t[1280 + ((lo >>> 16) & 0xff)]! ^
      t[1024 + (lo >>> 24)]! ^
      t[768 + (hi & 0xff)]! ^
      t[512 + ((hi >>> 8) & 0xff)]! ^
      t[256 + ((hi >>> 16) & 0xff)]! ^
      t[hi >>> 24]!
  }
  for (; i < to; i++) c = t[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8)
  return ~c >>> 0
}

/** A CRC as RocksDB stores it (masked, so that a CRC of bytes holding CRCs does not degenerate). */
export const maskCrc = (crc: number): number => ((((crc >>> 15) | (crc << 17)) >>> 0) + 0xa282ead8) >>> 0

/** Why a log could not be read further (the rest of it is not used). */
export type LogStop =
  /** The data ends inside a record: it is being written. Read again from the same place later. */
  | 'incomplete'
  /** A record failed its CRC, or has a type or shape this reader does not know: the log is not used past it. */
  | 'unreadable'

/** Where a reading of a log stands: what the next `readRecords` call continues from. */
export interface LogCursor {
  /** Offset in the file of the next record to read (always at a record's start). */
  readonly offset: number
  /** Fragments of a batch begun (FIRST, MIDDLE...) whose LAST fragment was not read yet. */
  readonly pending: readonly Uint8Array[]
  /** The offset of the pending batch's FIRST fragment (where to read again from if the data ends inside it). */
  readonly pendingAt: number
}

/** The start of a log. */
export const logStart: LogCursor = { offset: 0, pending: [], pendingAt: 0 }

/**
 * The whole write batches in `data` (the log's bytes from `cursor.offset` on), and where the next reading continues.
 * Stops at the end of the data (`stop` undefined: everything read), inside a record (`'incomplete'`: the cursor stays
 * at the last batch read whole), or at a record it cannot trust (`'unreadable'`).
 */
export const readRecords = (data: Uint8Array, cursor: LogCursor): { batches: Uint8Array[]; cursor: LogCursor; stop?: LogStop } => {
  const batches: Uint8Array[] = []
  let pos = 0
  let pending = [...cursor.pending]
  let pendingAt = cursor.pendingAt
  // The last place a whole batch ended: where an incomplete read resumes.
  let resume: LogCursor = cursor
  const at = (p: number): number => cursor.offset + p
  while (pos < data.length) {
    const inBlock = at(pos) % blockSize
    const left = blockSize - inBlock
    if (left < headerSize) {
      // Padding to the block's end: its bytes must all be there (else the writer is still inside this block).
      if (data.length - pos < left) return { batches, cursor: resume, stop: 'incomplete' }
      pos += left
      continue
    }
    if (data.length - pos < headerSize) return { batches, cursor: resume, stop: 'incomplete' }
    const length = data[pos + 4]! | (data[pos + 5]! << 8)
    const type = data[pos + 6]!
    const stored = (data[pos]! | (data[pos + 1]! << 8) | (data[pos + 2]! << 16) | (data[pos + 3]! << 24)) >>> 0
    if (stored === 0 && length === 0 && type === 0) return { batches, cursor: resume, stop: 'incomplete' } // zeroes: not written yet
    if (headerSize + length > left) return { batches, cursor: resume, stop: 'unreadable' }
    if (data.length - pos < headerSize + length) return { batches, cursor: resume, stop: 'incomplete' }
    // Every byte of the record is there (a record being written is shorter than its length says, caught above): a
    // CRC that does not match is a damaged log.
    if (maskCrc(crc32c(data, pos + 6, pos + headerSize + length)) !== stored) return { batches, cursor: resume, stop: 'unreadable' }
    const payload = data.subarray(pos + headerSize, pos + headerSize + length)
    const start = at(pos)
    pos += headerSize + length
    if (type === 1) {
      if (pending.length > 0) return { batches, cursor: resume, stop: 'unreadable' }
      batches.push(payload)
    } else if (type === 2) {
      if (pending.length > 0) return { batches, cursor: resume, stop: 'unreadable' }
      pending = [payload]
      pendingAt = start
      continue
    } else if (type === 3) {
      if (pending.length === 0) return { batches, cursor: resume, stop: 'unreadable' }
      pending.push(payload)
      continue
    } else if (type === 4) {
      if (pending.length === 0) return { batches, cursor: resume, stop: 'unreadable' }
      pending.push(payload)
      batches.push(Buffer.concat(pending))
      pending = []
    } else return { batches, cursor: resume, stop: 'unreadable' }
    resume = { offset: at(pos), pending: [], pendingAt: 0 }
  }
  // Everything read: a batch begun and not ended is read again whole next time, from its first fragment.
  return { batches, cursor: pending.length > 0 ? { offset: at(pos), pending, pendingAt } : resume }
}

/** One write batch of a log, as rockvisor wrote it. */
export interface LoggedBatch {
  /** The shard's sequence the batch carries (its `sequenceKey` put). */
  readonly seq: number
  readonly ops: WriteOp[]
}

const varint32 = (b: Uint8Array, at: number): [number, number] => {
  let v = 0
  for (let shift = 0; shift <= 28; shift += 7) {
    if (at >= b.length) throw new RangeError('a varint runs past the end of the batch')
    const byte = b[at++]!
    v += (byte & 0x7f) * 2 ** shift
    if ((byte & 0x80) === 0) return [v, at]
  }
  throw new RangeError('a varint longer than 5 bytes')
}

const slice = (b: Uint8Array, at: number): [Uint8Array, number] => {
  const [n, from] = varint32(b, at)
  if (from + n > b.length) throw new RangeError('a slice runs past the end of the batch')
  return [b.subarray(from, from + n), from + n]
}

const isSequenceKey = (key: Uint8Array): boolean => key.length === sequenceKey.length && key.every((x, i) => x === sequenceKey[i])

/**
 * The operations of a write batch and the shard sequence it carries, or `undefined` for a batch this reader cannot
 * use (an operation of another kind or column family, a malformed batch, no sequence of rockvisor's in it).
 */
export const decodeBatch = (payload: Uint8Array): LoggedBatch | undefined => {
  try {
    if (payload.length < 12) return undefined
    const count = (payload[8]! | (payload[9]! << 8) | (payload[10]! << 16) | (payload[11]! << 24)) >>> 0
    const ops: WriteOp[] = []
    let seq: number | undefined
    let at = 12
    let seen = 0
    while (at < payload.length) {
      let tag = payload[at++]!
      if (tag === 0x04 || tag === 0x05 || tag === 0x0e) {
        const [family, next] = varint32(payload, at)
        if (family !== 0) return undefined
        at = next
        tag = tag === 0x04 ? 0x00 : tag === 0x05 ? 0x01 : 0x0f
      }
      if (tag === 0x01) {
        const [key, a] = slice(payload, at)
        const [value, b] = slice(payload, a)
        at = b
        if (isSequenceKey(key)) seq = decodeSequence(value)
        ops.push({ type: 'put', key, value })
      } else if (tag === 0x00) {
        const [key, a] = slice(payload, at)
        at = a
        ops.push({ type: 'del', key })
      } else if (tag === 0x0f) {
        const [start, a] = slice(payload, at)
        const [end, b] = slice(payload, a)
        at = b
        ops.push({ type: 'delRange', start, end })
      } else return undefined
      seen++
    }
    if (seen !== count || seq === undefined) return undefined
    return { seq, ops }
  } catch {
    return undefined
  }
}
