/**
 * Binary keys and values of the three views, inside one shard's RocksDB directory.
 *
 * Every key starts with a view byte and the partition as a big-endian u32, so partitions of one shard never mix and
 * each (view, partition) is one contiguous key range. Numbers are fixed-width big-endian, so byte order is numeric
 * order. The msgId is the key's tail (its length is implied), which keeps the encoding injective.
 *
 * | view            | key                                          | value                      |
 * |-----------------|----------------------------------------------|----------------------------|
 * | by msg id       | 01 part:u32 msgId:utf8                       | ts:u64 seg:u32 off:u64 len:u32 |
 * | by time         | 02 part:u32 ts:u64 seg:u32 off:u64           | len:u32 msgId:utf8         |
 * | by segment/off  | 03 part:u32 seg:u32 off:u64                  | ts:u64 len:u32 msgId:utf8  |
 * | shard sequence  | 00 73 65 71 ("\0seq")                        | seq:u64                    |
 * | flush epoch     | 00 65 70 ("\0ep") slot:u8                     | epoch:u64                  |
 *
 * Each view holds the whole meta, so any one view answers its query without a second lookup.
 */
import type { MessageMeta, SegmentOffset } from './meta.js'

/** The three views of a meta, as their key prefix byte. */
export const View = { byId: 0x01, byTime: 0x02, bySegmentOffset: 0x03 } as const
export type View = (typeof View)[keyof typeof View]

/** The key holding the shard's write sequence (see the freshness design): outside every view's range. */
export const sequenceKey: Uint8Array = Uint8Array.of(0x00, 0x73, 0x65, 0x71)

/**
 * How many flush-epoch slots a shard keeps (see src/views.ts): epoch `e` is stored in slot `e % epochSlots`, so the
 * last `epochSlots` epochs are on disk at any time.
 */
export const epochSlots = 64

const epochKeys: readonly Uint8Array[] = Array.from({ length: epochSlots }, (_, slot) => Uint8Array.of(0x00, 0x65, 0x70, slot))

/** The key of the flush-epoch slot that holds `epoch`: outside every view's range. */
export const epochKey = (epoch: number): Uint8Array => epochKeys[epoch % epochSlots]!

/** Every flush-epoch key, slot 0 first. */
export const allEpochKeys: readonly Uint8Array[] = epochKeys

/**
 * The key holding the shard's identity (see {@link identityValue}): outside every view's range. A shard's first write
 * batch carries it (an older shard's next one, when its topic records its count), and every open checks it, so a
 * shard directory holding another shard's database (directories swapped, moved or restored to the wrong place, or a
 * manifest whose shard count changed) is refused instead of answering for the wrong partitions.
 */
export const identityKey: Uint8Array = Uint8Array.of(0x00, 0x69, 0x64)

/** The identity of shard `id` (`<topic dir>/<shard>`) of a root of `shards` shards: `<id> of <shards>`, UTF-8. */
export const identityValue = (id: string, shards: number): Buffer => Buffer.from(`${id} of ${shards}`, 'utf8')

/**
 * What an identity entry read from a shard says, for checks and messages: its `text` (at most 300 characters: the
 * entry may hold anything; an identity is at most a 200-character topic directory, a shard and a count) and the
 * `shard` it names (the text before ` of <count>`).
 */
export const readIdentity = (entry: Uint8Array): { text: string; shard: string } => {
  const text = Buffer.from(entry).toString('utf8').slice(0, 300)
  const at = text.lastIndexOf(' of ')
  return { text, shard: at >= 0 ? text.slice(0, at) : text }
}

const decoder = new TextDecoder('utf-8', { fatal: true })

const putU32 = (b: Buffer, at: number, v: number): number => b.writeUInt32BE(v, at)
const putU64 = (b: Buffer, at: number, v: number): number => {
  b.writeUInt32BE(Math.floor(v / 0x1_0000_0000), at)
  return b.writeUInt32BE(v % 0x1_0000_0000, at + 4)
}
// Read byte by byte: no view of the buffer is allocated per field. A read past the end is a RangeError, as
// Buffer's readUInt32BE would throw.
const getU32 = (b: Uint8Array, at: number): number => {
  if (at < 0 || at + 4 > b.length) throw new RangeError(`reading 4 bytes at ${at} of a ${b.length}-byte buffer`)
  return b[at]! * 0x100_0000 + ((b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!)
}
const getU64 = (b: Uint8Array, at: number): number => getU32(b, at) * 0x1_0000_0000 + getU32(b, at + 4)

const header = (view: View, partition: number, rest: number): Buffer => {
  const b = Buffer.allocUnsafe(5 + rest)
  b[0] = view
  putU32(b, 1, partition)
  return b
}

/**
 * Key of the by-id view, for a msgId of `bytes` UTF-8 bytes (`Buffer.byteLength(msgId)`, which a caller that checked
 * the msgId knows already): the msgId is written straight into the key, never encoded apart.
 */
export const idKeyOf = (partition: number, msgId: string, bytes: number): Buffer => {
  const b = header(View.byId, partition, bytes)
  b.write(msgId, 5, bytes, 'utf8')
  return b
}

/** Key of the by-id view. */
export const idKey = (partition: number, msgId: string): Buffer => idKeyOf(partition, msgId, Buffer.byteLength(msgId, 'utf8'))

/** Key of the by-time view. `segmentId`/`offset` break ties between metas of equal timestamp. */
export const timeKey = (partition: number, timestamp: number, segmentId = 0, offset = 0): Buffer => {
  const b = header(View.byTime, partition, 20)
  putU64(b, 5, timestamp)
  putU32(b, 13, segmentId)
  putU64(b, 17, offset)
  return b
}

/** The greatest by-time key with this timestamp: the inclusive upper bound of a time range. */
export const timeKeyMax = (partition: number, timestamp: number): Buffer =>
  timeKey(partition, timestamp, 0xffff_ffff, Number.MAX_SAFE_INTEGER)

/** Key of the by-segment-offset view. */
export const segmentOffsetKey = (partition: number, so: SegmentOffset): Buffer => {
  const b = header(View.bySegmentOffset, partition, 12)
  putU32(b, 5, so.segmentId)
  putU64(b, 9, so.offset)
  return b
}

/** First key of a (view, partition) range, inclusive. */
export const rangeStart = (view: View, partition: number): Buffer => header(view, partition, 0)

/** End of a (view, partition) range, exclusive: the next partition's (or view's) first key. */
export const rangeEnd = (view: View, partition: number): Buffer =>
  partition === 0xffff_ffff ? Buffer.of(view + 1) : header(view, partition + 1, 0)

/** Value stored under the by-id key. */
export const idValue = (m: MessageMeta): Buffer => {
  const b = Buffer.allocUnsafe(24)
  putU64(b, 0, m.timestamp)
  putU32(b, 8, m.segmentId)
  putU64(b, 12, m.offset)
  putU32(b, 20, m.msgLen)
  return b
}

/** Value stored under the by-time key (`bytes`: the msgId's length in UTF-8 bytes, when the caller knows it). */
export const timeValue = (m: MessageMeta, bytes = Buffer.byteLength(m.msgId, 'utf8')): Buffer => {
  const b = Buffer.allocUnsafe(4 + bytes)
  putU32(b, 0, m.msgLen)
  b.write(m.msgId, 4, bytes, 'utf8')
  return b
}

/** Value stored under the by-segment-offset key (`bytes` as for {@link timeValue}). */
export const segmentOffsetValue = (m: MessageMeta, bytes = Buffer.byteLength(m.msgId, 'utf8')): Buffer => {
  const b = Buffer.allocUnsafe(12 + bytes)
  putU64(b, 0, m.timestamp)
  putU32(b, 8, m.msgLen)
  b.write(m.msgId, 12, bytes, 'utf8')
  return b
}

/** The meta behind a by-id entry. */
export const decodeIdEntry = (msgId: string, value: Uint8Array): MessageMeta => ({
  msgId,
  timestamp: getU64(value, 0),
  segmentId: getU32(value, 8),
  offset: getU64(value, 12),
  msgLen: getU32(value, 20),
})

/** The meta behind a by-time entry. */
export const decodeTimeEntry = (key: Uint8Array, value: Uint8Array): MessageMeta => ({
  msgId: decoder.decode(value.subarray(4)),
  timestamp: getU64(key, 5),
  segmentId: getU32(key, 13),
  offset: getU64(key, 17),
  msgLen: getU32(value, 0),
})

/** The meta behind a by-segment-offset entry. */
export const decodeSegmentOffsetEntry = (key: Uint8Array, value: Uint8Array): MessageMeta => ({
  msgId: decoder.decode(value.subarray(12)),
  timestamp: getU64(value, 0),
  segmentId: getU32(key, 5),
  offset: getU64(key, 9),
  msgLen: getU32(value, 8),
})

/** The place a by-segment-offset key addresses. */
export const placeOfSegmentOffsetKey = (key: Uint8Array): SegmentOffset => ({
  segmentId: getU32(key, 5),
  offset: getU64(key, 9),
})

/** The segment offset a by-time key points at. */
export const segmentOffsetOfTimeKey = (key: Uint8Array): SegmentOffset => ({
  segmentId: getU32(key, 13),
  offset: getU64(key, 17),
})

/**
 * The partition of a by-time key (`key[0] === View.byTime`), or `undefined` when the key is too short to be one (a
 * key read from the logs is not trusted to be well formed).
 */
export const partitionOfTimeKey = (key: Uint8Array): number | undefined => (key.length >= 13 ? getU32(key, 1) : undefined)

/** The timestamp of a by-time key at least 13 bytes long (see {@link partitionOfTimeKey}). */
export const timestampOfTimeKey = (key: Uint8Array): number => getU64(key, 5)

/** Decodes any key back to what it addresses (used by tests and tools; the inverse of the encoders above). */
export const decodeKey = (
  key: Uint8Array,
):
  | { view: 'byId'; partition: number; msgId: string }
  | { view: 'byTime'; partition: number; timestamp: number; segmentId: number; offset: number }
  | { view: 'bySegmentOffset'; partition: number; segmentId: number; offset: number }
  | { view: 'sequence' }
  | { view: 'epoch'; slot: number }
  | { view: 'identity' } => {
  if (key.length === sequenceKey.length && key.every((b, i) => b === sequenceKey[i])) return { view: 'sequence' }
  if (key.length === identityKey.length && key.every((b, i) => b === identityKey[i])) return { view: 'identity' }
  if (key.length === 4 && key[0] === 0x00 && key[1] === 0x65 && key[2] === 0x70 && key[3]! < epochSlots) return { view: 'epoch', slot: key[3]! }
  const partition = getU32(key, 1)
  switch (key[0]) {
    case View.byId:
      return { view: 'byId', partition, msgId: decoder.decode(key.subarray(5)) }
    case View.byTime:
      if (key.length !== 25) break
      return { view: 'byTime', partition, timestamp: getU64(key, 5), segmentId: getU32(key, 13), offset: getU64(key, 17) }
    case View.bySegmentOffset:
      if (key.length !== 17) break
      return { view: 'bySegmentOffset', partition, segmentId: getU32(key, 5), offset: getU64(key, 9) }
  }
  throw new Error(`not a rockvisor key: ${Buffer.from(key).toString('hex')}`)
}

/** The sequence value written with every batch. */
export const sequenceValue = (seq: number): Buffer => {
  const b = Buffer.allocUnsafe(8)
  putU64(b, 0, seq)
  return b
}

/** Decodes the stored sequence (0 when the shard has never been written). */
export const decodeSequence = (value: Uint8Array | null | undefined): number => (value ? getU64(value, 0) : 0)
