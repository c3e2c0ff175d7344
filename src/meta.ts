/**
 * The data model of the index and the validation every public entry point runs before it touches the disk.
 * Validation either returns the checked value or throws {@link InvalidInput}; it never partially accepts a batch.
 */
import { InvalidInput, describeError } from './errors.js'

/** Where a message sits in the log: its segment and its byte offset within the segment. */
export interface SegmentOffset {
  /** Segment number, an integer in [0, 2^32 - 1]. */
  readonly segmentId: number
  /** Offset in the segment, a safe integer >= 0. */
  readonly offset: number
}

/** What the index stores about one message. `msgId` identifies it; `(segmentId, offset)` is its place in the log. */
export interface MessageMeta extends SegmentOffset {
  /** Unique message id: a well-formed string of 1..{@link limits.msgIdBytes} UTF-8 bytes. */
  readonly msgId: string
  /** Milliseconds (or any unit the caller chooses, consistently): a safe integer >= 0. */
  readonly timestamp: number
  /** Length of the message in bytes, an integer in [0, 2^32 - 1]. */
  readonly msgLen: number
}

/** Every size limit of the input, in one place. */
export const limits = {
  /** Longest msgId, in UTF-8 bytes. */
  msgIdBytes: 1024,
  /** Longest topic name, in UTF-8 bytes. */
  topicBytes: 1024,
  /** Most metas in one `batchPut`. */
  batchMetas: 100_000,
  /** Largest partition number (u32). */
  maxPartition: 0xffff_ffff,
  /** Largest u32 (segmentId, msgLen). */
  maxU32: 0xffff_ffff,
  /** Most shards per topic. */
  maxShards: 65_536,
} as const

const encoder = new TextEncoder()

/** UTF-8 bytes of a string already checked to be well formed. */
export const utf8 = (s: string): Uint8Array => encoder.encode(s)

const fail = (field: string, message: string): never => {
  throw new InvalidInput({ field, message: `${field}: ${message}` })
}

/**
 * Runs `read`, which reads caller-supplied values: a getter or a Proxy that throws while it is read becomes
 * InvalidInput naming `field` (with the error's text), not an untyped error. InvalidInput passes through.
 */
export const reading = <T>(field: string | (() => string), read: () => T): T => {
  try {
    return read()
  } catch (e) {
    if (e instanceof InvalidInput) throw e
    return fail(typeof field === 'string' ? field : field(), `reading it threw (${describeError(e)}): pass plain data`)
  }
}

/** Checks a safe integer >= 0 and <= max. */
export const checkInteger = (field: string, value: unknown, max: number = Number.MAX_SAFE_INTEGER): number => {
  if (typeof value !== 'number' || !Number.isSafeInteger(value)) {
    return fail(field, `must be a safe integer, got ${describeValue(value)}`)
  }
  if (value < 0 || value > max) return fail(field, `must be in [0, ${max}], got ${value}`)
  return value
}

/**
 * Checks a well-formed string of 1..maxBytes UTF-8 bytes and returns its length in UTF-8 bytes (counted without
 * encoding it).
 */
export const checkTextBytes = (field: string, value: unknown, maxBytes: number): number => {
  if (typeof value !== 'string') return fail(field, `must be a string, got ${describeValue(value)}`)
  if (value.length === 0) return fail(field, 'must not be empty')
  if (!value.isWellFormed()) return fail(field, 'must be well-formed Unicode (no lone surrogates)')
  const bytes = Buffer.byteLength(value, 'utf8')
  if (bytes > maxBytes) return fail(field, `must be at most ${maxBytes} UTF-8 bytes, got ${bytes}`)
  return bytes
}

/** Checks a well-formed string of 1..maxBytes UTF-8 bytes. */
export const checkText = (field: string, value: unknown, maxBytes: number): string => {
  checkTextBytes(field, value, maxBytes)
  return value as string
}

/** Checks a topic name: any well-formed string of 1..1024 UTF-8 bytes (it never becomes a raw path component). */
export const checkTopic = (topic: unknown): string => checkText('topic', topic, limits.topicBytes)

/** Checks a partition number (u32). */
export const checkPartition = (partition: unknown): number => checkInteger('partition', partition, limits.maxPartition)

/** Checks a segment offset, returning a fresh plain object. */
export const checkSegmentOffset = (so: unknown, field = 'segmentOffset'): SegmentOffset => {
  if (typeof so !== 'object' || so === null) return fail(field, `must be an object, got ${describeValue(so)}`)
  const { segmentId, offset } = reading(field, () => ({ segmentId: (so as Record<string, unknown>).segmentId, offset: (so as Record<string, unknown>).offset }))
  // The checks of checkInteger, with the field's name made only for an error (this runs on every lookup).
  if (!isNat(segmentId, limits.maxU32) || !isNat(offset, Number.MAX_SAFE_INTEGER)) {
    checkInteger(`${field}.segmentId`, segmentId, limits.maxU32)
    checkInteger(`${field}.offset`, offset)
  }
  return { segmentId: segmentId as number, offset: offset as number }
}

/** Whether `v` is a safe integer in [0, max]. */
const isNat = (v: unknown, max: number): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 && v <= max

/** The field name of a meta: `metas[i]` for a meta of a batch (made only for an error message). */
const metaField = (at: string | number): string => (typeof at === 'number' ? `metas[${at}]` : at)

/**
 * Checks one meta (`at`: its field name, or its index in a batch), returning a fresh plain object with exactly the
 * five fields. Each field is read once, in order, and checked before the next is read; names are made only for an
 * error.
 */
const checkMetaAt = (meta: unknown, at: string | number): MessageMeta => {
  if (typeof meta !== 'object' || meta === null) return fail(metaField(at), `must be an object, got ${describeValue(meta)}`)
  const m = meta as Record<string, unknown>
  const msgId = m.msgId
  // A msgId of at most msgIdBytes / 3 UTF-16 units has at most msgIdBytes UTF-8 bytes: no need to count them.
  if (typeof msgId !== 'string' || msgId.length === 0 || !msgId.isWellFormed() || (msgId.length * 3 > limits.msgIdBytes && Buffer.byteLength(msgId, 'utf8') > limits.msgIdBytes)) {
    checkText(`${metaField(at)}.msgId`, msgId, limits.msgIdBytes)
  }
  const timestamp = m.timestamp
  if (!isNat(timestamp, Number.MAX_SAFE_INTEGER)) checkInteger(`${metaField(at)}.timestamp`, timestamp)
  const segmentId = m.segmentId
  if (!isNat(segmentId, limits.maxU32)) checkInteger(`${metaField(at)}.segmentId`, segmentId, limits.maxU32)
  const offset = m.offset
  if (!isNat(offset, Number.MAX_SAFE_INTEGER)) checkInteger(`${metaField(at)}.offset`, offset)
  const msgLen = m.msgLen
  if (!isNat(msgLen, limits.maxU32)) checkInteger(`${metaField(at)}.msgLen`, msgLen, limits.maxU32)
  return { msgId: msgId as string, timestamp: timestamp as number, segmentId: segmentId as number, offset: offset as number, msgLen: msgLen as number }
}

/** Checks one meta, returning a fresh plain object with exactly the five fields. */
export const checkMeta = (meta: unknown, field = 'meta'): MessageMeta => reading(field, () => checkMetaAt(meta, field))

/**
 * Checks a batch: an array of 0..100,000 metas in which no msgId and no (segmentId, offset) appears twice
 * (a batch that names one message twice is ambiguous, so it is refused whole).
 */
export const checkBatch = (metas: unknown): MessageMeta[] => {
  let at = -1
  const checked = reading(
    () => (at < 0 ? 'metas' : `metas[${at}]`),
    () => {
      if (!Array.isArray(metas)) return fail('metas', `must be an array, got ${describeValue(metas)}`)
      const n: number = metas.length
      if (n > limits.batchMetas) return fail('metas', `must hold at most ${limits.batchMetas} metas, got ${n}`)
      const out: MessageMeta[] = new Array(n)
      for (at = 0; at < n; at++) out[at] = checkMetaAt(metas[at], at)
      return out
    },
  )
  const ids = new Set<string>()
  // Places by segment: a batch usually spans few segments.
  const places = new Map<number, Set<number>>()
  for (let i = 0; i < checked.length; i++) {
    const m = checked[i]!
    if (ids.has(m.msgId)) fail(`metas[${i}].msgId`, `duplicate msgId ${JSON.stringify(m.msgId)} in one batch`)
    ids.add(m.msgId)
    let offsets = places.get(m.segmentId)
    if (offsets === undefined) places.set(m.segmentId, (offsets = new Set()))
    if (offsets.has(m.offset)) fail(`metas[${i}]`, `duplicate (segmentId, offset) (${m.segmentId}:${m.offset}) in one batch`)
    offsets.add(m.offset)
  }
  return checked
}

/** Checks a closed time range [startTs, endTs]; start > end is allowed and simply matches nothing. */
export const checkTimeRange = (startTs: unknown, endTs: unknown): [number, number] => [
  checkInteger('startTs', startTs),
  checkInteger('endTs', endTs),
]

const describeValue = (v: unknown): string => {
  if (typeof v === 'string') return v.length > 40 ? `a string of length ${v.length}` : JSON.stringify(v)
  if (typeof v === 'number' || typeof v === 'bigint' || typeof v === 'boolean') return String(v)
  if (v === null) return 'null'
  if (Array.isArray(v)) return 'an array'
  return typeof v
}
