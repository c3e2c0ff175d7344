/**
 * Point reads on the data of the write benchmark: the index's point lookups (`getByMsgId`,
 * `getMsgIdBySegmentOffset`, served by the shard's readers) versus the raw binding doing the same work on read-only
 * instances of the same shard directories: its own `db.get` (one native read per key, as many calls in flight as
 * the index has callers) and its own read batch (one MultiGet of 100 keys per call, 10 calls in flight). The raw
 * side is rocksdb-native itself, never rockvisor's engine wrapper.
 */
import RocksDB from 'rocksdb-native'
import { defaults, type Index } from '../src/index.js'
import { idKey, segmentOffsetKey } from '../src/keys.js'
import { drive, timeNs, type Run } from './measure.js'
import { topic } from './write.js'

export interface Lookup {
  readonly partition: number
  readonly shard: number
  readonly msgId: string
  readonly segmentId: number
  readonly offset: number
}

/** Which point lookup: by msgId (`getByMsgId`, the by-id view) or by place (`getMsgIdBySegmentOffset`). */
export type PointKind = 'byId' | 'bySegmentOffset'

export interface ReadResult {
  readonly run: Run
  /** Keys looked up (calls x keys per call). */
  readonly keys: number
  /** Keys that came back absent (every key looked up was written, so this must be 0). */
  readonly misses: number
  /** CPU time of the whole process during the run (main thread and libuv's pool: user + system), µs. */
  readonly cpuUs: number
}

/** Runs `fn`, adding the process's CPU time during it. */
const withCpu = async (fn: () => Promise<Omit<ReadResult, 'cpuUs'>>): Promise<ReadResult> => {
  const before = process.cpuUsage()
  const result = await fn()
  const used = process.cpuUsage(before)
  return { ...result, cpuUs: used.user + used.system }
}

/** Several runs of one path as one: their lookups, time, CPU and every call's latency added up. */
export const mergeResults = (results: readonly ReadResult[]): ReadResult => {
  const latencies = new Float64Array(results.reduce((a, x) => a + x.run.latenciesNs.length, 0))
  let at = 0
  for (const x of results) {
    latencies.set(x.run.latenciesNs, at)
    at += x.run.latenciesNs.length
  }
  const sum = (f: (x: ReadResult) => number) => results.reduce((a, x) => a + f(x), 0)
  return {
    run: { calls: sum((x) => x.run.calls), elapsedNs: sum((x) => x.run.elapsedNs), latenciesNs: latencies },
    keys: sum((x) => x.keys),
    misses: sum((x) => x.misses),
    cpuUs: sum((x) => x.cpuUs),
  }
}

/** The key a lookup reads, as the index builds it (built inside the timing on the raw side too). */
const keyOf = (kind: PointKind, l: Lookup): Uint8Array => (kind === 'byId' ? idKey(l.partition, l.msgId) : segmentOffsetKey(l.partition, l))

/** The index's point lookup of `kind` for every lookup, `concurrency` calls in flight. */
export const readIndex = (index: Index, kind: PointKind, lookups: readonly Lookup[], concurrency: number): Promise<ReadResult> =>
  withCpu(async () => {
    let misses = 0
    const run = await drive(
      lookups.length,
      concurrency,
      kind === 'byId'
        ? async (i) => {
            const l = lookups[i]!
            if ((await index.getByMsgId(topic, l.partition, l.msgId)) === undefined) misses++
          }
        : async (i) => {
            const l = lookups[i]!
            if ((await index.getMsgIdBySegmentOffset(topic, l.partition, { segmentId: l.segmentId, offset: l.offset })) === undefined) misses++
          },
    )
    return { run, keys: lookups.length, misses }
  })

/**
 * One raw read-only rocksdb-native instance per shard directory, with the index readers' settings (maxOpenFiles
 * -1), opened one after the other; returns each open's duration too.
 */
export const openRawReaders = async (dirs: readonly string[]): Promise<{ dbs: RocksDB[]; openNs: number[] }> => {
  const dbs: RocksDB[] = []
  const openNs: number[] = []
  try {
    for (const dir of dirs) {
      const { ns, value } = await timeNs(async () => {
        const db = new RocksDB(dir, { readOnly: true, createIfMissing: false, ...defaults.readerRocksdb, maxOpenFiles: -1 })
        await db.ready()
        return db
      })
      dbs.push(value)
      openNs.push(ns)
    }
    return { dbs, openNs }
  } catch (e) {
    await Promise.all(dbs.map((db) => db.close()))
    throw e
  }
}

/** The binding's own `db.get`, one key per call, `concurrency` calls in flight. */
export const readRawGet = (dbs: readonly RocksDB[], kind: PointKind, lookups: readonly Lookup[], concurrency: number): Promise<ReadResult> =>
  withCpu(async () => {
    let misses = 0
    const run = await drive(lookups.length, concurrency, async (i) => {
      const l = lookups[i]!
      if ((await dbs[l.shard]!.get(keyOf(kind, l))) === null) misses++
    })
    return { run, keys: lookups.length, misses }
  })

/**
 * The binding's own read batch: `perCall` keys of one shard per call (one MultiGet), `concurrency` calls in flight.
 * The lookups are grouped by shard (outside the timing), in their shuffled order, and cut into calls; call k of
 * every shard comes before call k + 1 of any, so consecutive calls spread over the shards as single lookups do.
 */
export const readRawMultiGet = async (
  dbs: readonly RocksDB[],
  kind: PointKind,
  lookups: readonly Lookup[],
  perCall: number,
  concurrency: number,
): Promise<ReadResult> => {
  const byShard = dbs.map((): Lookup[] => [])
  for (const l of lookups) byShard[l.shard]!.push(l)
  const calls: { shard: number; lookups: Lookup[] }[] = []
  const most = Math.max(...byShard.map((list) => list.length))
  for (let i = 0; i < most; i += perCall) {
    for (const [shard, list] of byShard.entries()) if (i < list.length) calls.push({ shard, lookups: list.slice(i, i + perCall) })
  }
  return withCpu(async () => {
    let misses = 0
    let keys = 0
    const run = await drive(calls.length, concurrency, async (i) => {
      const c = calls[i]!
      const batch = dbs[c.shard]!.read({ capacity: c.lookups.length })
      try {
        // Every key's promise is handled at once (Promise.all): a failed key fails `values` with its own error.
        const values = Promise.all(c.lookups.map((l) => batch.get(keyOf(kind, l))))
        await batch.flush().catch(() => undefined)
        for (const v of await values) if (v === null) misses++
        keys += c.lookups.length
      } finally {
        batch.destroy()
      }
    })
    return { run, keys, misses }
  })
}
