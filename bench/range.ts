/**
 * Range reads against point reads, for a lone caller: `getRangeByTime` (the first and last meta of a time range: two
 * seeks, run at once on one view) against `getByMsgId` on the same index, and the binding doing the same work on the
 * same shard directories: two iterators of one entry each (forward and reverse, at once) against one `db.get`. The
 * paths take turns lookup by lookup, so that they meet the same load of the shared machine.
 */
import type RocksDB from 'rocksdb-native'
import type { Index } from '../src/index.js'
import { idKey, timeKey, timeKeyMax } from '../src/keys.js'
import type { Dataset } from './data.js'
import { percentile } from './measure.js'

export interface RangeRow {
  readonly path: string
  readonly calls: number
  readonly p50Us: number
  readonly p99Us: number
}

const firstEntry = async (db: RocksDB, range: Record<string, unknown>): Promise<void> => {
  for await (const entry of db.iterator(range)) void entry
}

/** `n` lookups of each path on the index written by the write runs (time ranges of `span` ms around a meta). */
export const rangeVsPoint = async (index: Index, raw: readonly RocksDB[], ds: Dataset, topic: string, n: number, span: number): Promise<RangeRow[]> => {
  const times = { indexRange: [] as number[], indexPoint: [] as number[], rawRange: [] as number[], rawPoint: [] as number[] }
  const metas = ds.batches.flatMap((b) => b.metas.map((m) => ({ partition: b.partition, meta: m })))
  const shardOf = (p: number) => index.locate(topic, p).shard
  for (let i = 0; i < n; i++) {
    const { partition, meta } = metas[(i * 7_919) % metas.length]!
    const db = raw[shardOf(partition)]!
    const steps: [keyof typeof times, () => Promise<unknown>][] = [
      ['indexRange', () => index.getRangeByTime(topic, partition, meta.timestamp, meta.timestamp + span)],
      ['indexPoint', () => index.getByMsgId(topic, partition, meta.msgId)],
      [
        'rawRange',
        () => {
          const range = { gte: timeKey(partition, meta.timestamp), lte: timeKeyMax(partition, meta.timestamp + span), limit: 1 }
          return Promise.all([firstEntry(db, range), firstEntry(db, { ...range, reverse: true })])
        },
      ],
      ['rawPoint', () => db.get(idKey(partition, meta.msgId))],
    ]
    for (let k = 0; k < steps.length; k++) {
      const [name, run] = steps[(i + k) % steps.length]!
      const t = performance.now()
      await run()
      times[name].push((performance.now() - t) * 1_000)
    }
  }
  const row = (path: string, xs: number[]): RangeRow => ({ path, calls: xs.length, p50Us: percentile(xs, 50), p99Us: percentile(xs, 99) })
  return [
    row('index `getRangeByTime` (two seeks at once, one view)', times.indexRange),
    row('index `getByMsgId`', times.indexPoint),
    row('raw: two iterators of 1 entry at once (forward, reverse)', times.rawRange),
    row('raw `db.get`', times.rawPoint),
  ]
}
