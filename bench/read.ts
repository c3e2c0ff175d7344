/**
 * Point reads on the data of the write benchmark: `index.getByMsgId` (routed to the shard's readers) versus raw
 * `getMany` on read-only handles of the same shard directories, one key per call and 100 keys per call (MultiGet),
 * with a fixed number of calls in flight.
 */
import { defaults, rocksEngine, type Index, type StorageHandle } from '../src/index.js'
import { idKey } from '../src/keys.js'
import { drive, timeNs, type Run } from './measure.js'
import { topic } from './write.js'

export interface Lookup {
  readonly partition: number
  readonly shard: number
  readonly msgId: string
}

export interface ReadResult {
  readonly run: Run
  /** Keys looked up (calls x keys per call). */
  readonly keys: number
  /** Keys that came back absent (every key looked up was written, so this must be 0). */
  readonly misses: number
}

/** `getByMsgId` for every lookup, `concurrency` calls in flight. */
export const readIndex = async (index: Index, lookups: readonly Lookup[], concurrency: number): Promise<ReadResult> => {
  let misses = 0
  const run = await drive(lookups.length, concurrency, async (i) => {
    const l = lookups[i]!
    if ((await index.getByMsgId(topic, l.partition, l.msgId)) === undefined) misses++
  })
  return { run, keys: lookups.length, misses }
}

/**
 * One read-only handle per shard directory, with the index readers' settings (maxOpenFiles -1), opened one after
 * the other; returns each open's duration too.
 */
export const openRawReaders = async (dirs: readonly string[]): Promise<{ handles: StorageHandle[]; openNs: number[] }> => {
  const handles: StorageHandle[] = []
  const openNs: number[] = []
  try {
    for (const dir of dirs) {
      const { ns, value } = await timeNs(() => rocksEngine.open(dir, { readOnly: true, ...defaults.readerRocksdb, maxOpenFiles: -1 }))
      handles.push(value)
      openNs.push(ns)
    }
    return { handles, openNs }
  } catch (e) {
    await Promise.all(handles.map((h) => h.close()))
    throw e
  }
}

/** Raw `getMany` of one key per call (the by-id key), on the shard's handle. */
export const readRawSingle = async (handles: readonly StorageHandle[], lookups: readonly Lookup[], concurrency: number): Promise<ReadResult> => {
  let misses = 0
  const run = await drive(lookups.length, concurrency, async (i) => {
    const l = lookups[i]!
    const [value] = await handles[l.shard]!.getMany([idKey(l.partition, l.msgId)])
    if (value === undefined) misses++
  })
  return { run, keys: lookups.length, misses }
}

/**
 * Raw `getMany` of `perCall` keys per call (one MultiGet): the lookups are grouped by shard (outside the timing), in
 * their shuffled order, and cut into calls of `perCall` keys of one shard.
 */
export const readRawMulti = async (
  handles: readonly StorageHandle[],
  lookups: readonly Lookup[],
  perCall: number,
  concurrency: number,
): Promise<ReadResult> => {
  const byShard = handles.map((): Lookup[] => [])
  for (const l of lookups) byShard[l.shard]!.push(l)
  // Call k of every shard, then call k + 1, ...: consecutive calls spread over the shards as the single lookups do.
  const calls: { shard: number; lookups: Lookup[] }[] = []
  const most = Math.max(...byShard.map((list) => list.length))
  for (let i = 0; i < most; i += perCall) {
    for (const [shard, list] of byShard.entries()) if (i < list.length) calls.push({ shard, lookups: list.slice(i, i + perCall) })
  }
  let misses = 0
  let keys = 0
  const run = await drive(calls.length, concurrency, async (i) => {
    const c = calls[i]!
    const values = await handles[c.shard]!.getMany(c.lookups.map((l) => idKey(l.partition, l.msgId)))
    keys += values.length
    for (const v of values) if (v === undefined) misses++
  })
  return { run, keys, misses }
}
