/**
 * Write throughput: the same batches through `index.batchPut` and through the raw engine (3 puts per meta + the
 * shard's sequence key, one write batch per batch of metas), with the same bound on batches in flight.
 */
import { defaults, openIndex, rocksEngine, shardOf, type Index, type StorageHandle } from '../src/index.js'
import { idKey, idValue, segmentOffsetKey, segmentOffsetValue, sequenceKey, sequenceValue, timeKey, timeValue } from '../src/keys.js'
import type { WriteOp } from '../src/engine.js'
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
 * Opens an index (shards 4) under `root` and brings up every shard the data set uses (one read per partition, then
 * waiting until primaries and readers are ready), so that the timed part measures writes, not opens.
 */
export const openWarmIndex = async (root: string, ds: Dataset, shards: number): Promise<Index> => {
  const index = await openIndex({ root, shards })
  try {
    await Promise.all(ds.partitions.map((p) => index.getByMsgId(topic, p, 'warm-up')))
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

/** One read-write handle per shard directory, with the index primary's RocksDB settings. */
export const openRawPrimaries = async (dirs: readonly string[]): Promise<StorageHandle[]> => {
  const handles: StorageHandle[] = []
  try {
    for (const dir of dirs) handles.push(await rocksEngine.open(dir, { readOnly: false, ...defaults.primaryRocksdb }))
    return handles
  } catch (e) {
    await Promise.all(handles.map((h) => h.close()))
    throw e
  }
}

/**
 * Writes every batch straight to the shard's handle: per meta the three view entries (keys and values from
 * src/keys.ts), plus the shard's sequence key, in one write batch; at most `concurrency` batches in flight (RocksDB
 * orders concurrent batches itself; nothing here serializes them per shard, and nothing reads before writing).
 */
export const writeRaw = async (handles: readonly StorageHandle[], ds: Dataset, concurrency: number): Promise<WriteResult> => {
  let bytes = 0
  const seq = handles.map(() => 0)
  const run = await drive(ds.batches.length, concurrency, async (i) => {
    const b = ds.batches[i]!
    const ops: WriteOp[] = []
    for (const m of b.metas) {
      const entries: [Uint8Array, Uint8Array][] = [
        [idKey(b.partition, m.msgId), idValue(m)],
        [timeKey(b.partition, m.timestamp, m.segmentId, m.offset), timeValue(m)],
        [segmentOffsetKey(b.partition, m), segmentOffsetValue(m)],
      ]
      for (const [key, value] of entries) {
        ops.push({ type: 'put', key, value })
        bytes += key.length + value.length
      }
    }
    ops.push({ type: 'put', key: sequenceKey, value: sequenceValue(++seq[b.shard]!) })
    await handles[b.shard]!.write(ops)
  })
  return { run, bytes }
}
