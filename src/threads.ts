/**
 * RocksDB's compaction threads at the lowest CPU priority (`rocksdb.compactionPriority: 'low'`, the default).
 *
 * Every RocksDB instance of a process shares one set of background threads: flushes run in its HIGH pool (threads
 * named `rocksdb:high`), compactions in its LOW and BOTTOM pools (`rocksdb:low`, `rocksdb:bottom`). Everything else
 * this package does, every read and every write, crosses the main thread, and on a machine with few cores the
 * compactions of a busy primary took it the CPU it needed: measured under one writer and 1,000 callers on 2 cores
 * (bench/placement.ts), the main thread ran 0.60 of the time and waited for a core 0.35 of it, while compactions
 * used 0.6 to 0.7 of a core. RocksDB's own remedy is `Env::LowerThreadPoolCPUPriority` (nice 19 for a pool's
 * threads), which rocksdb-native does not expose; this module does the same from outside, on Linux, by setting the
 * nice value of each compaction thread it finds in `/proc/self/task`. A compaction still gets every core nothing else
 * wants (the other core, here), and under full load it falls behind only until RocksDB's own write slowdowns let it
 * catch up. Flushes keep their priority: writes wait for them once the memtables are full.
 */
import { readFileSync, readdirSync } from 'node:fs'
import { getPriority, setPriority } from 'node:os'

/** The nice value of a lowered thread: the lowest priority, as RocksDB's `LowerThreadPoolCPUPriority` gives. */
export const loweredNice = 19

/** Thread names (`/proc/self/task/<tid>/comm`) of RocksDB's compaction pools. */
const compactionThreadNames: ReadonlySet<string> = new Set(['rocksdb:low', 'rocksdb:bottom'])

/** The process's thread ids at the last scan: the names are read again only when they changed. */
let threadsSeen = ''

/**
 * Gives every compaction thread of this process that runs above {@link loweredNice} that nice value, and returns how
 * many it lowered. The process's threads are listed first; their names are read only when the list changed since the
 * last call (RocksDB adds threads to its pools when an instance opens with more background jobs than they hold, and
 * never removes them), so a call that finds no new thread costs one directory listing. Linux only: where
 * `/proc/self/task` cannot be read, it does nothing and returns 0. Never throws: a thread that ended meanwhile, or a
 * priority the system refuses to set, is passed over.
 */
export const lowerCompactionThreads = (): number => {
  let tids: string[]
  try {
    tids = readdirSync('/proc/self/task')
  } catch {
    return 0
  }
  const seen = tids.join(' ')
  if (seen === threadsSeen) return 0
  threadsSeen = seen
  let lowered = 0
  for (const tid of tids) {
    try {
      if (!compactionThreadNames.has(readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trim())) continue
      const id = Number(tid)
      if (getPriority(id) >= loweredNice) continue
      setPriority(id, loweredNice)
      lowered++
    } catch {
      // The thread ended, or the system refused: nothing to do for it.
    }
  }
  return lowered
}
