/**
 * RocksDB's compaction threads at the lowest CPU priority (`rocksdb.compactionCpuPriority: 'low'`, the default).
 *
 * Every RocksDB instance of a process shares one set of background threads: flushes run in its HIGH pool (threads
 * named `rocksdb:high`), compactions in its LOW and BOTTOM pools (`rocksdb:low`, `rocksdb:bottom`). Everything else
 * this package does, every read and every write, crosses the main thread, and on a machine with few cores the
 * compactions of a busy primary took it the CPU it needed: measured under one writer and 1,000 callers on 2 cores
 * (bench/placement.ts, BENCHMARKS.md section 6, three runs), the main thread ran on a core 0.59 to 0.61 of the time
 * and waited for one 0.34 to 0.37 of it, while RocksDB's background threads used 0.67 to 0.76 of a core. RocksDB's
 * own remedy is `Env::LowerThreadPoolCPUPriority` (nice 19 for a pool's threads), which rocksdb-native does not
 * expose; this module does the same from outside, on Linux, by setting the nice value of each compaction thread it
 * finds in `/proc/self/task`. A compaction still gets every core nothing else wants, and should it fall behind,
 * RocksDB's own write slowdowns make room for it. Flushes keep their priority: writes wait for them once the
 * memtables are full.
 */
import { readFileSync, readdirSync } from 'node:fs'
import { getPriority, setPriority } from 'node:os'

/** The nice value of a lowered thread: the lowest priority, as RocksDB's `LowerThreadPoolCPUPriority` gives. */
export const loweredNice = 19

/** Thread names (`/proc/self/task/<tid>/comm`) of RocksDB's compaction pools. */
const compactionThreadNames: ReadonlySet<string> = new Set(['rocksdb:low', 'rocksdb:bottom'])

/**
 * Thread ids already seen named by RocksDB (`rocksdb:…`): their names are not read again. RocksDB names a pool thread
 * once, just after starting it, and never again, so a thread seen before it was named (it still bore its creator's
 * name) is read again at the next call; one seen named is settled.
 */
const settled = new Set<string>()

/**
 * Gives every compaction thread of this process that runs above {@link loweredNice} that nice value, and returns how
 * many it lowered. It lists the process's threads and reads the name of each it has not seen named by RocksDB yet
 * (a few small reads of /proc: the runtime calls it after each primary's open and at each pool maintenance, which
 * catches the threads named after a call, and those another open added to the pools). Linux only: where
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
  let lowered = 0
  for (const tid of tids) {
    if (settled.has(tid)) continue
    try {
      const name = readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trim()
      if (!name.startsWith('rocksdb:')) continue
      settled.add(tid)
      if (!compactionThreadNames.has(name)) continue
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
