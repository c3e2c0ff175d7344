/**
 * The synthetic data set of the benchmark: metas of a few partitions (the same number in every shard), cut into
 * batches of 100, deterministic (seeded PRNG) so every run writes the same bytes.
 */
import { shardOf, type MessageMeta } from '../src/index.js'

/** A seeded PRNG (mulberry32): numbers in [0, 1). */
export const rng = (seed: number): (() => number) => {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** Fisher-Yates, in place, with a seeded PRNG. */
export const shuffle = <T>(items: T[], seed: number): T[] => {
  const random = rng(seed)
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1))
    const t = items[i]!
    items[i] = items[j]!
    items[j] = t
  }
  return items
}

export interface Batch {
  readonly partition: number
  readonly shard: number
  readonly metas: readonly MessageMeta[]
}

export interface Dataset {
  /** Partitions written, the same number per shard. */
  readonly partitions: readonly number[]
  /** Batches in issue order: round-robin over partitions, each partition's batches in time order. */
  readonly batches: readonly Batch[]
  readonly metas: number
}

/**
 * `total` metas over `perShard` partitions in each of `shards` shards (routed as the index routes them), in batches
 * of `batchSize`. msgIds look like `m-<partition>-<8 digits>`; timestamps rise 5 ms per meta; a segment holds 10,000
 * messages; msgLen is 64..1023.
 */
export const makeDataset = (total: number, batchSize: number, shards: number, perShard: number): Dataset => {
  const partitions: number[] = []
  const taken = new Array<number>(shards).fill(0)
  for (let p = 0; partitions.length < shards * perShard; p++) {
    const s = shardOf(p, shards)
    if (taken[s]! < perShard) {
      taken[s]!++
      partitions.push(p)
    }
  }
  const perPartition = Math.ceil(total / partitions.length / batchSize) * batchSize
  const random = rng(0x5eed)
  const byPartition = partitions.map((partition) => {
    const batches: Batch[] = []
    let offset = 0
    let metas: MessageMeta[] = []
    for (let i = 0; i < perPartition; i++) {
      const segmentId = Math.floor(i / 10_000)
      if (i % 10_000 === 0) offset = 0
      const msgLen = 64 + Math.floor(random() * 960)
      metas.push({ msgId: `m-${partition}-${String(i).padStart(8, '0')}`, timestamp: 1_700_000_000_000 + i * 5, segmentId, offset, msgLen })
      offset += msgLen
      if (metas.length === batchSize) {
        batches.push({ partition, shard: shardOf(partition, shards), metas })
        metas = []
      }
    }
    return batches
  })
  const batches: Batch[] = []
  for (let k = 0; k < perPartition / batchSize; k++) for (const list of byPartition) batches.push(list[k]!)
  return { partitions, batches, metas: perPartition * partitions.length }
}

/** Every (partition, msgId, segment offset) of the data set, shuffled with `seed`. */
export const lookups = (ds: Dataset, seed: number): { partition: number; shard: number; msgId: string; segmentId: number; offset: number }[] =>
  shuffle(
    ds.batches.flatMap((b) => b.metas.map((m) => ({ partition: b.partition, shard: b.shard, msgId: m.msgId, segmentId: m.segmentId, offset: m.offset }))),
    seed,
  )
