/**
 * What the primary's flush policy costs in compactions as an index grows (not part of `npm run bench`: run it alone).
 *
 *   npx tsx bench/compaction.ts [--metas N] [--every N] [--flush-every-records N]
 *
 * One writer-mode index, one shard, one partition: `--metas` metas (default 2,000,000) written in batches of 100, 4
 * in flight, with the default flush policy or `--flush-every-records N` (and a write buffer of N x 4096 bytes, the
 * least the option allows). Every `--every` metas (default 500,000) it prints the write rate and the cores busy (the
 * process's CPU time per second, every thread) since the last line. At the end it reads RocksDB's own event log of
 * the shard (its `LOG` file: one JSON event per flush and per compaction) and prints how many flushes and
 * compactions ran, the bytes the compactions wrote against the bytes in table files at the end (the write
 * amplification of compactions), and the CPU time they took. Each flush of the default policy (16,384 records,
 * about 5,500 metas) writes a small level-0 table file; RocksDB merges level-0 files into the level below once 4
 * have gathered, and every meta's by-id key lands anywhere in the key space, so each such merge rewrites most of that
 * level: the bytes compactions write grow with the index, per meta written.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { defaults, openIndex, type MessageMeta } from '../src/index.js'

const arg = (name: string, fallback: number): number => {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? Number(process.argv[i + 1]) : fallback
}

const metas = arg('metas', 2_000_000)
const every = arg('every', 500_000)
const flushEveryRecords = arg('flush-every-records', defaults.freshness.flushEveryRecords)
const batchSize = 100
const inFlight = 4
const meta = (n: number): MessageMeta => ({ msgId: `msg-${n}`, timestamp: 1_700_000_000_000 + n, segmentId: Math.floor(n / 1_000_000), offset: n % 1_000_000, msgLen: 200 })
const fmt = (n: number) => Math.round(n).toLocaleString('en-US')

/**
 * Totals of the flush and compaction events of a shard's RocksDB logs: its `LOG` and the `LOG.old.*` a reopened
 * primary left (RocksDB starts a new `LOG` at each open). A line that is not a whole event (cut short) is passed over.
 */
const events = (dir: string) => {
  const t = { flushes: 0, compactions: 0, compactionBytes: 0, compactionCpuS: 0 }
  const logs = readdirSync(dir).filter((f) => f === 'LOG' || f.startsWith('LOG.old.'))
  for (const line of logs.flatMap((f) => readFileSync(join(dir, f), 'utf8').split('\n'))) {
    const at = line.indexOf('EVENT_LOG_v1 ')
    if (at < 0) continue
    let e: { event?: string; total_output_size?: number; compaction_time_cpu_micros?: number }
    try {
      e = JSON.parse(line.slice(at + 'EVENT_LOG_v1 '.length)) as typeof e
    } catch {
      continue
    }
    if (e.event === 'flush_finished') t.flushes++
    if (e.event === 'compaction_finished') {
      t.compactions++
      t.compactionBytes += e.total_output_size ?? 0
      t.compactionCpuS += (e.compaction_time_cpu_micros ?? 0) / 1e6
    }
  }
  return t
}

const root = await mkdtemp(join(tmpdir(), 'rockvisor-compaction-'))
try {
  const policy = flushEveryRecords === defaults.freshness.flushEveryRecords ? {} : { freshness: { flushEveryRecords }, rocksdb: { primary: { writeBufferSize: Math.max(defaults.primaryRocksdb.writeBufferSize, flushEveryRecords * 4096) } } }
  console.log(`${fmt(metas)} metas in batches of ${batchSize}, ${inFlight} in flight, one shard; flushEveryRecords ${fmt(flushEveryRecords)}; node ${process.version}`)
  const index = await openIndex({ root, shards: 1, ...policy })
  const started = performance.now()
  let [t0, cpu0, written, before, next] = [performance.now(), process.cpuUsage(), 0, 0, every]
  try {
    while (written < metas) {
      await Promise.all(Array.from({ length: inFlight }, (_, k) => index.batchPut('t', 0, Array.from({ length: batchSize }, (_, i) => meta(written + k * batchSize + i)))))
      written += inFlight * batchSize
      if (written >= next || written >= metas) {
        const s = (performance.now() - t0) / 1000
        const cpu = process.cpuUsage(cpu0)
        console.log(`${fmt(written)} metas: ${fmt((written - before) / s)} metas/s, cores busy ${((cpu.user + cpu.system) / 1e6 / s).toFixed(2)}`)
        ;[t0, cpu0, before, next] = [performance.now(), process.cpuUsage(), written, next + every]
      }
    }
  } finally {
    await index.close()
  }
  const dir = join(root, 't', 'index', '0')
  const tables = readdirSync(dir).filter((f) => f.endsWith('.sst')).reduce((sum, f) => sum + statSync(join(dir, f)).size, 0)
  const t = events(dir)
  const elapsed = (performance.now() - started) / 1000
  console.log(
    `${t.flushes} flushes, ${t.compactions} compactions; compactions wrote ${fmt(t.compactionBytes / 2 ** 20)} MiB for ${fmt(tables / 2 ** 20)} MiB of table files at the end ` +
      `(${(t.compactionBytes / tables).toFixed(1)}x) and took ${t.compactionCpuS.toFixed(1)} s of CPU in ${elapsed.toFixed(1)} s`,
  )
} finally {
  await rm(root, { recursive: true, force: true })
}
