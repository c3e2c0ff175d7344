/**
 * Range reads against point reads, for a lone caller: `getRangeByTime` (the first and last meta of a time range: two
 * seeks, run at once on one view) against `getByMsgId` on the same index, and the binding doing the same work on the
 * same shard directories: two iterators of one entry each (forward and reverse, at once) against one `db.get`. The
 * paths take turns lookup by lookup, so that they meet the same load of the shared machine. And whole-partition
 * scans against the binding's own iterator.
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

export interface ScanRow {
  readonly path: string
  readonly scans: number
  readonly entries: number
  readonly entriesPerS: number
  readonly cpuUsPerEntry: number
}

/**
 * Whole-partition scans, a lone consumer taking every entry: `scanByTime` over all time on the index (decoded metas)
 * against the binding's own iterator over the same keys of the same shard directory (`for await`, chunks of 64 entries
 * per native read, as the index reads). Each partition is scanned by both paths in turn, the order alternating.
 */
export const scanVsRaw = async (index: Index, raw: readonly RocksDB[], ds: Dataset, topic: string, rounds: number): Promise<ScanRow[]> => {
  const totals = { index: { scans: 0, entries: 0, ns: 0n, cpuUs: 0 }, raw: { scans: 0, entries: 0, ns: 0n, cpuUs: 0 } }
  const end = Number.MAX_SAFE_INTEGER
  for (let r = 0; r < rounds; r++) {
    for (const [i, partition] of ds.partitions.entries()) {
      const db = raw[index.locate(topic, partition).shard]!
      for (const path of (r + i) % 2 === 0 ? (['index', 'raw'] as const) : (['raw', 'index'] as const)) {
        let entries = 0
        const cpu = process.cpuUsage()
        const start = process.hrtime.bigint()
        if (path === 'index') {
          for await (const meta of index.scanByTime(topic, partition, 0, end)) {
            void meta
            entries++
          }
        } else {
          for await (const entry of db.iterator({ gte: timeKey(partition, 0), lte: timeKeyMax(partition, end), capacity: 64 })) {
            void entry
            entries++
          }
        }
        const t = totals[path]
        t.ns += process.hrtime.bigint() - start
        const used = process.cpuUsage(cpu)
        t.cpuUs += used.user + used.system
        t.entries += entries
        t.scans++
      }
    }
  }
  const row = (path: string, t: (typeof totals)['index']): ScanRow => ({
    path,
    scans: t.scans,
    entries: t.entries,
    entriesPerS: t.entries / (Number(t.ns) / 1e9),
    cpuUsPerEntry: t.cpuUs / t.entries,
  })
  return [row('index `scanByTime` (whole partition, decoded metas)', totals.index), row("raw: the binding's iterator, `for await` (64 entries per read)", totals.raw)]
}
