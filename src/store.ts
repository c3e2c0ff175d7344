/**
 * The index operations on one shard's storage handle: the data plane, plain async functions with no lifecycle logic.
 * Callers (the runtime) have already validated their input and picked the handle; these functions encode, do one
 * batched I/O where they can, and decode.
 *
 * Semantics of a write: the index holds at most one meta per msgId and at most one per (segmentId, offset). Putting
 * a meta replaces whatever meta had its msgId and whatever meta had its (segmentId, offset), in all three views, in
 * the same atomic write batch. Every write batch also stores the shard's next sequence number (see `sequenceKey`).
 */
import { chunksOf, firstKey, getManySettled, type StorageHandle, type WriteOp } from './engine.js'
import { StorageFailure } from './errors.js'
import {
  View,
  decodeIdEntry,
  decodeSegmentOffsetEntry,
  decodeTimeEntry,
  idKey,
  idKeyOf,
  idValue,
  placeOfSegmentOffsetKey,
  rangeEnd,
  rangeStart,
  segmentOffsetKey,
  segmentOffsetOfTimeKey,
  segmentOffsetValue,
  timeKey,
  timeKeyMax,
  timeValue,
} from './keys.js'
import type { MessageMeta, SegmentOffset } from './meta.js'
import { readViewState, stampOps, type Stamp } from './views.js'

const decoder = new TextDecoder('utf-8', { fatal: true })

/**
 * The failure of an entry read from `path` that does not decode: this module writes every entry whole (msgIds
 * checked UTF-8, values of fixed layout), so bytes that do not decode (a msgId that is not UTF-8, a value too short)
 * are a damaged entry, reason `corruption`, never an answer made of them.
 */
export const damagedEntry = (path: string, cause: unknown): StorageFailure =>
  new StorageFailure({
    reason: 'corruption',
    path,
    cause,
    message: `an entry stored in ${path} does not decode (${cause instanceof Error ? cause.message : String(cause)}): it is damaged`,
  })

/** `decode()` of bytes read from `handle`; a failure is {@link damagedEntry}. */
const decoding = <T>(handle: { readonly path: string }, decode: () => T): T => {
  try {
    return decode()
  } catch (e) {
    throw damagedEntry(handle.path, e)
  }
}

/** The sequence a handle's view reflects: the sequence of the last batch written before it was opened (0: none). */
export const readSequence = async (handle: StorageHandle): Promise<number> => (await readViewState(handle)).seq

/** How {@link putMetas} may spare reads. */
export interface PutOptions {
  /**
   * What the caller knows of the places (segmentId, offset) the partition holds: every one of them is at or below
   * this place (`null`: the partition holds none). A meta whose place lies above it cannot displace anything by its
   * place, so that place is not looked up. Omitted: every place is looked up.
   */
  readonly placeBound?: SegmentOffset | null
  /**
   * What the caller knows of the msgIds the partition holds (see src/msgids.ts): a msgId whose by-id key it says the
   * partition cannot hold is not looked up. Every by-id key written is added to it before the write. Omitted: every
   * msgId is looked up.
   */
  readonly msgIds?: { mayHold(key: Uint8Array): boolean; add(key: Uint8Array): void }
}

/** Whether place `a` comes after place `b` (the by-segment-offset view's order). */
export const placeAfter = (a: SegmentOffset, b: SegmentOffset): boolean => a.segmentId > b.segmentId || (a.segmentId === b.segmentId && a.offset > b.offset)

/** The last place (segmentId, offset) of the partition's by-segment-offset view, or `undefined` if it is empty. One seek. */
export const lastPlace = async (handle: StorageHandle, partition: number): Promise<SegmentOffset | undefined> => {
  const key = await firstKey(handle, { gte: rangeStart(View.bySegmentOffset, partition), lt: rangeEnd(View.bySegmentOffset, partition), reverse: true })
  return key === undefined ? undefined : placeOfSegmentOffsetKey(key)
}

/**
 * Writes `metas` (already validated: no msgId or place twice) to `partition` in one atomic batch stamped with
 * `stamp` (a sequence, or a sequence and the flush epoch: see src/views.ts). Reads the entries it replaces first (one
 * MultiGet: every msgId that `options.msgIds` does not rule out, every place that `options.placeBound` does not; none
 * when they rule out all), so the caller must serialize writes to a shard. Returns the bytes of keys and values put for the metas.
 */
export const putMetas = async (
  handle: StorageHandle,
  partition: number,
  metas: readonly MessageMeta[],
  stamp: number | Stamp,
  options: PutOptions = {},
): Promise<{ bytes: number }> => {
  const n = metas.length
  if (n === 0) return { bytes: 0 }
  const bound = options.placeBound
  const known = options.msgIds
  const idBytes: number[] = new Array(n)
  const idKeys: Buffer[] = new Array(n)
  const soKeys: Buffer[] = new Array(n)
  // The keys looked up: the msgIds that may be held (`ided[j]`: the meta of lookup j), then the places that may be
  // held (`placed[j]`: the meta of lookup ided.length + j).
  const lookups: Uint8Array[] = []
  const ided: number[] = []
  const placed: number[] = []
  for (let i = 0; i < n; i++) {
    const m = metas[i]!
    const bytes = Buffer.byteLength(m.msgId, 'utf8')
    idBytes[i] = bytes
    const idK = (idKeys[i] = idKeyOf(partition, m.msgId, bytes))
    if (known === undefined || known.mayHold(idK)) {
      lookups.push(idK)
      ided.push(i)
    }
  }
  // Added only now: a msgId of this batch is not one the partition may already hold.
  if (known !== undefined) for (const key of idKeys) known.add(key)
  for (let i = 0; i < n; i++) {
    const m = metas[i]!
    soKeys[i] = segmentOffsetKey(partition, m)
    if (bound === undefined || (bound !== null && !placeAfter(m, bound))) {
      lookups.push(soKeys[i]!)
      placed.push(i)
    }
  }
  const deletes = new Map<string, Uint8Array>()
  if (lookups.length > 0) {
    // One promise for the whole MultiGet (not one per key); a key that failed fails the write with its own error.
    const { values: found, errors } = await getManySettled(handle, lookups)
    const failed = errors?.find((e) => e !== undefined)
    if (failed !== undefined) throw failed
    const displace = (old: MessageMeta): void => {
      for (const key of [idKey(partition, old.msgId), timeKey(partition, old.timestamp, old.segmentId, old.offset), segmentOffsetKey(partition, old)]) {
        deletes.set(Buffer.from(key).toString('latin1'), key)
      }
    }
    for (let j = 0; j < ided.length; j++) {
      const byId = found[j]
      if (byId !== undefined) displace(decoding(handle, () => decodeIdEntry(metas[ided[j]!]!.msgId, byId)))
    }
    for (let j = 0; j < placed.length; j++) {
      const bySo = found[ided.length + j]
      if (bySo !== undefined) displace(decoding(handle, () => decodeSegmentOffsetEntry(soKeys[placed[j]!]!, bySo)))
    }
  }
  // Deletes first, then puts: a put of the same key later in the batch wins, so a displaced entry that this batch
  // writes again is simply overwritten.
  const ops: WriteOp[] = [...deletes.values()].map((key) => ({ type: 'del', key }))
  let bytes = 0
  for (let i = 0; i < n; i++) {
    const m = metas[i]!
    const idK = idKeys[i]!
    const idV = idValue(m)
    const timeK = timeKey(partition, m.timestamp, m.segmentId, m.offset)
    const timeV = timeValue(m, idBytes[i])
    const soK = soKeys[i]!
    const soV = segmentOffsetValue(m, idBytes[i])
    ops.push({ type: 'put', key: idK, value: idV }, { type: 'put', key: timeK, value: timeV }, { type: 'put', key: soK, value: soV })
    bytes += idK.length + idV.length + timeK.length + timeV.length + soK.length + soV.length
  }
  stampOps(ops, stamp)
  await handle.write(ops)
  return { bytes }
}

/** The meta stored under msgId, or `undefined`. One point lookup. */
export const getByMsgId = async (
  handle: StorageHandle,
  partition: number,
  msgId: string,
): Promise<MessageMeta | undefined> => {
  const [value] = await handle.getMany([idKey(partition, msgId)])
  return value === undefined ? undefined : decoding(handle, () => decodeIdEntry(msgId, value))
}

/** The msgId stored at a segment offset, or `undefined`. One point lookup. */
export const getMsgIdBySegmentOffset = async (
  handle: StorageHandle,
  partition: number,
  so: SegmentOffset,
): Promise<string | undefined> => {
  const [value] = await handle.getMany([segmentOffsetKey(partition, so)])
  return value === undefined ? undefined : decoding(handle, () => msgIdOfSegmentOffsetValue(value))
}

/** The msgId in a by-segment-offset entry's value. */
export const msgIdOfSegmentOffsetValue = (value: Uint8Array): string => decoder.decode(value.subarray(12))

/**
 * The segment offsets of the first and the last meta (in time order, ties broken by segment offset) whose
 * timestamp is in [startTs, endTs], or `undefined` when there is none. Two seeks at once, whatever the index holds.
 */
export const getRangeByTime = async (
  handle: StorageHandle,
  partition: number,
  startTs: number,
  endTs: number,
): Promise<{ first: SegmentOffset; last: SegmentOffset } | undefined> => {
  if (startTs > endTs) return undefined
  const range = { gte: timeKey(partition, startTs), lte: timeKeyMax(partition, endTs), limit: 1 }
  // Both ends from one snapshot: on a live primary a write could otherwise land between the two seeks. The two seeks
  // run at once (a range read costs about one seek's latency, not two).
  return handle.withSnapshot(async (view) => {
    const [first, last] = await Promise.all([firstKey(view, range), firstKey(view, { ...range, reverse: true })])
    if (first === undefined) return undefined
    return decoding(handle, () => ({ first: segmentOffsetOfTimeKey(first), last: segmentOffsetOfTimeKey(last ?? first) }))
  })
}

/**
 * Streams the metas with timestamp in [startTs, endTs] in time order (ties by segment offset), a chunk at a time (the
 * entries of one read of the engine, never empty), reading ahead a small chunk at a time: memory stays bounded
 * whatever the range holds. Stop early with `break`.
 */
export async function* scanByTime(
  handle: StorageHandle,
  partition: number,
  startTs: number,
  endTs: number,
  limit?: number,
): AsyncGenerator<MessageMeta[]> {
  if (startTs > endTs || limit === 0) return
  const range = { gte: timeKey(partition, startTs), lte: timeKeyMax(partition, endTs), ...(limit === undefined ? {} : { limit }) }
  for await (const chunk of chunksOf(handle, range)) {
    const metas: MessageMeta[] = []
    let damaged: unknown
    try {
      for (const { key, value } of chunk) metas.push(decodeTimeEntry(key, value))
    } catch (e) {
      damaged = damagedEntry(handle.path, e)
    }
    // The entries before a damaged one are still yielded, as one by one.
    if (metas.length > 0) yield metas
    if (damaged !== undefined) throw damaged
  }
}

/** How many metas one retention batch removes; each batch is atomic for the metas it holds. */
export const retentionChunk = 1024

/**
 * Removes every meta of `partition` whose timestamp is < `before`, from all three views. Works in atomic batches of
 * up to {@link retentionChunk} metas, each stamped with the next stamp from `nextStamp`: a crash in the middle leaves
 * some metas removed and the rest intact, never a meta present in one view and absent from another. `onChunk` hears
 * of every chunk once it is written (the next chunk waits for what it returns), so a caller that retries after a
 * failure still knows what the first attempt removed. Returns how many metas this call removed.
 */
export const deleteBefore = async (
  handle: StorageHandle,
  partition: number,
  before: number,
  nextStamp: () => number | Stamp,
  onChunk?: (deleted: number) => void | Promise<void>,
): Promise<{ deleted: number }> => {
  let deleted = 0
  // Each chunk resumes after the last key of the previous one, so no chunk steps over earlier deletions again.
  let from: Uint8Array = rangeStart(View.byTime, partition)
  for (;;) {
    const ops: WriteOp[] = []
    let last: Uint8Array | undefined
    for await (const { key, value } of handle.iterate({ gte: from, lt: timeKey(partition, before), limit: retentionChunk })) {
      const m = decoding(handle, () => decodeTimeEntry(key, value))
      ops.push({ type: 'del', key }, { type: 'del', key: idKey(partition, m.msgId) }, { type: 'del', key: segmentOffsetKey(partition, m) })
      last = key
    }
    if (last === undefined) return { deleted }
    const metas = ops.length / 3
    stampOps(ops, nextStamp())
    await handle.write(ops)
    deleted += metas
    await onChunk?.(metas)
    from = Buffer.concat([last, Buffer.of(0)]) // the smallest key after `last`
  }
}

/** Every meta of a partition, from the by-id view (for tests and tools; reads the whole partition). */
export async function* allMetasById(handle: StorageHandle, partition: number): AsyncGenerator<MessageMeta> {
  for await (const { key, value } of handle.iterate({ gte: rangeStart(View.byId, partition), lt: rangeEnd(View.byId, partition) })) {
    yield decoding(handle, () => decodeIdEntry(decoder.decode(key.subarray(5)), value))
  }
}

/** Every meta of a partition, read from one view (for tests and tools). */
export async function* allMetas(
  handle: StorageHandle,
  partition: number,
  view: 'byTime' | 'bySegmentOffset',
): AsyncGenerator<MessageMeta> {
  const v = View[view]
  for await (const { key, value } of handle.iterate({ gte: rangeStart(v, partition), lt: rangeEnd(v, partition) })) {
    yield decoding(handle, () => (view === 'byTime' ? decodeTimeEntry(key, value) : decodeSegmentOffsetEntry(key, value)))
  }
}
