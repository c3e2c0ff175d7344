/**
 * Write throughput: the same batches through `index.batchPut` and through the raw binding's own write batch (3 puts
 * per meta + the shard's sequence key, one write batch per batch of metas), with the same bound on batches in flight.
 */
import RocksDB from 'rocksdb-native'
import { defaults, openIndex, shardOf, type Index, type IndexOptions } from '../src/index.js'
import { idKey, idValue, segmentOffsetKey, segmentOffsetValue, sequenceKey, sequenceValue, timeKey, timeValue } from '../src/keys.js'
import type { Dataset } from './data.js'
import { drive, type Run } from './measure.js'

export const topic = 'bench'

export interface WriteResult {
  readonly run: Run
  /** Bytes of keys and values put for the metas (without the sequence key). */
  readonly bytes: number
}

/** Polls `ready` every 20 ms until it holds; fails after `timeoutMs`. */
export const waitUntil = async (what: string, ready: () => boolean, timeoutMs = 30_000): Promise<number> => {
  const t0 = Date.now()
  while (!ready()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 20))
  }
  return Date.now() - t0
}

/** Every shard the index created runs its primary and only serving readers (none opening or refreshing). */
export const settled = (index: Index, shards: number): boolean => {
  const s = index.stats()
  return (
    s.shards.length === shards &&
    s.shards.every((sh) => sh.state === 'running' && sh.primary === 'ready' && Object.keys(sh.readers).length > 0 && Object.keys(sh.readers).every((k) => k === 'serving'))
  )
}

/**
 * Flushing as good as off, the most the options allow: the largest flush threshold, in the largest memtable, or an
 * hour (what the write benchmark's third path runs with, to show what the primary's flushes cost).
 */
export const flushingOff = { freshness: { flushEveryRecords: 262_144, flushIntervalMs: 3_600_000 }, rocksdb: { primary: { writeBufferSize: 1024 * 1024 * 1024 } } }

/**
 * Opens an index (`shards`, and `options`) under `root` and brings up every shard the data set uses, then waits
 * until primaries and readers are ready, so that the timed part measures writes, not opens. Only a write creates a
 * shard (a read or a retention pass of a shard nobody wrote creates nothing): one meta is written to a partition of
 * each shard that the data set does not use, so the data set's partitions start empty (no msgId and no place known).
 */
export const openWarmIndex = async (root: string, ds: Dataset, shards: number, options: Partial<IndexOptions> = {}): Promise<Index> => {
  const index = await openIndex({ ...options, root, shards })
  try {
    const used = new Set(ds.partitions)
    await Promise.all(
      [...new Set(ds.partitions.map((p) => shardOf(p, shards)))].map(async (shard) => {
        let p = 0
        while (used.has(p) || shardOf(p, shards) !== shard) p++
        await index.batchPut(topic, p, [{ msgId: 'warm-up', timestamp: 0, segmentId: 0, offset: 0, msgLen: 1 }])
      }),
    )
    await waitUntil('every shard to run', () => settled(index, new Set(ds.partitions.map((p) => shardOf(p, shards))).size))
    return index
  } catch (e) {
    await index.close()
    throw e
  }
}

/** Writes every batch through `index.batchPut`, at most `concurrency` batches in flight. */
export const writeIndex = async (index: Index, ds: Dataset, concurrency: number): Promise<WriteResult> => {
  let bytes = 0
  const run = await drive(ds.batches.length, concurrency, async (i) => {
    const b = ds.batches[i]!
    const { bytes: written } = await index.batchPut(topic, b.partition, b.metas)
    bytes += written
  })
  return { run, bytes }
}

/** One read-write rocksdb-native instance per shard directory, with the index primary's RocksDB settings. */
export const openRawPrimaries = async (dirs: readonly string[]): Promise<RocksDB[]> => {
  const dbs: RocksDB[] = []
  try {
    for (const dir of dirs) {
      const db = new RocksDB(dir, { readOnly: false, createIfMissing: true, ...defaults.primaryRocksdb })
      dbs.push(db)
      await db.ready()
    }
    return dbs
  } catch (e) {
    await Promise.all(dbs.map((db) => db.close()))
    throw e
  }
}

/**
 * Writes every batch straight to the shard's instance with the binding's own write batch: per meta the three view
 * entries (keys and values from src/keys.ts), plus the shard's sequence key; at most `concurrency` batches in flight
 * (RocksDB orders concurrent batches itself; nothing here serializes them per shard, and nothing reads before writing).
 */
export const writeRaw = async (dbs: readonly RocksDB[], ds: Dataset, concurrency: number): Promise<WriteResult> => {
  let bytes = 0
  const seq = dbs.map(() => 0)
  const run = await drive(ds.batches.length, concurrency, async (i) => {
    const b = ds.batches[i]!
    const batch = dbs[b.shard]!.write({ capacity: b.metas.length * 3 + 1 })
    try {
      for (const m of b.metas) {
        const entries: [Uint8Array, Uint8Array][] = [
          [idKey(b.partition, m.msgId), idValue(m)],
          [timeKey(b.partition, m.timestamp, m.segmentId, m.offset), timeValue(m)],
          [segmentOffsetKey(b.partition, m), segmentOffsetValue(m)],
        ]
        for (const [key, value] of entries) {
          batch.tryPut(key, value)
          bytes += key.length + value.length
        }
      }
      batch.tryPut(sequenceKey, sequenceValue(++seq[b.shard]!))
      await batch.flush()
    } finally {
      batch.destroy()
    }
  })
  return { run, bytes }
}
