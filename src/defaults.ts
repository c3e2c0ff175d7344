/**
 * Every default of rockvisor, in one place. The option types (src/options.ts) refer here for their defaults.
 */
import type { ChildSpec } from '../actors/policy.js'

/** Shards of a new root (an existing root keeps the count it was created with). */
export const defaultShards = 16

/**
 * The primary's child spec: always restarted; more than 10 restarts in 60 s => the shard fails. Reachable: the
 * first 11 backoff delays (100 ms doubling, capped at 10 s) sum to 52.7 s < 60 s.
 */
export const primarySpec: ChildSpec = {
  restart: 'permanent',
  intensity: { maxRestarts: 10, withinMs: 60_000 },
  backoff: { minMs: 100, maxMs: 10_000, factor: 2, jitter: 0.2 },
  resetAfterMs: 30_000,
}

/**
 * A reader's child spec: replaced after a failure; more than 10 failures in 60 s => the pool degrades. Reachable:
 * the first 11 backoff delays (50 ms doubling, capped at 5 s) sum to 26.35 s < 60 s. (It was 20 in 60 s, whose
 * first 21 delays sum to 76.35 s: the pool could never degrade.)
 */
export const readerSpec: ChildSpec = {
  restart: 'transient',
  intensity: { maxRestarts: 10, withinMs: 60_000 },
  backoff: { minMs: 50, maxMs: 5_000, factor: 2, jitter: 0.2 },
  resetAfterMs: 30_000,
}

/** The reader pool of each shard. */
export const readerPool = {
  /** Readers kept open per shard once its primary has opened. */
  min: 1,
  /** Most readers per shard. */
  max: 4,
  /** Grow when reads in flight per serving reader reach this. */
  growAt: 8,
  /** Retire a reader (above min) unused this long, ms. */
  idleMs: 30_000,
  /** Recycle a reader this old, ms (old readers pin table files the primary's compaction deleted). */
  maxLifetimeMs: 300_000,
  /** Refreshes running at once per shard. */
  refreshesPerShard: 1,
  /** Where reader handles live: in this thread, in worker threads or in child processes (see src/reader-workers.ts). */
  placement: 'in-process',
  /** Worker threads per index with placement `worker`, child processes with `process`. */
  workerThreads: 1,
} as const

/** The write path, per shard. */
export const writes = {
  /**
   * Bytes the msgId filters of a shard may take together (see src/msgids.ts: about 10 bits per msgId held); a
   * partition whose filter does not fit looks up every msgId it writes.
   */
  msgIdFilterBytes: 64 * 1024 * 1024,
} as const

/** Bounded queues, per shard. */
export const queues = {
  /** Writes waiting (for the primary to open or for earlier writes): beyond this, `Overloaded`. */
  maxPendingWrites: 1024,
  /** Reads waiting for a primary to open: beyond this, `Overloaded`. */
  maxPendingReads: 4096,
  /** Reads running or waiting: beyond this, `Overloaded` (bounds the memory of reads in flight). */
  maxInflightReads: 8192,
} as const

/** How long a request may wait (for a handle, a view, its turn) before it fails with `Timeout`, ms. */
export const requestTimeoutMs = 30_000

/** Native opens (primary or reader, open or refresh) running at once in this process: they share libuv's pool. */
export const maxConcurrentOpens = 2

/** Freshness: how reads see writes, and how the primary keeps a reader's refresh cheap. */
export const freshness = {
  /** The staleness bound of `bounded` reads (the default consistency of a reader-mode index), ms. */
  maxStalenessMs: 1_000,
  /**
   * Flush the primary's memtable after this many records (3 per meta) since the last flush. At most
   * `writeBufferSize / 4096` (4 KiB of memtable budgeted per record, see src/options.ts): 64 MiB / 4 KiB = 16,384.
   */
  flushEveryRecords: 16_384,
  /** Flush the primary's memtable if anything waits unflushed for this long, ms. */
  flushIntervalMs: 5_000,
  /**
   * Bytes per shard of recent writes a writer keeps in memory (see src/recent.ts), so that fresh point reads are
   * served by readers whose views lag the newest writes. Pruned as readers refresh; at the bound the oldest go.
   */
  recentWritesBytes: 16 * 1024 * 1024,
  /** Reader mode: feed that memory from the shard's write-ahead logs (see src/wal-tail.ts). */
  followLogs: true,
} as const

/** How often the pool maintenance runs (idle retirement, lifetime recycling), ms. */
export const maintenanceIntervalMs = 1_000

/** How long `close()` waits for in-flight work and handles before releasing everything anyway, ms. */
export const closeTimeoutMs = 10_000

/**
 * The CPU priority of RocksDB's compaction threads once a primary opened: the lowest (see src/threads.ts; measured
 * in BENCHMARKS.md, section 6).
 */
export const compactionCpuPriority: 'low' | 'normal' = 'low'

/** RocksDB settings of the primary (the seed's, where the binding exposes them). */
export const primaryRocksdb = {
  maxOpenFiles: 10_000,
  maxBackgroundJobs: 4,
  writeBufferSize: 64 * 1024 * 1024,
  maxWriteBufferNumber: 4,
  enableStatistics: false,
}

/** RocksDB settings of a reader. `maxOpenFiles: -1` is required beside a live primary (see README, Readers). */
export const readerRocksdb = {
  maxOpenFiles: -1,
  maxBackgroundJobs: 2,
  writeBufferSize: 64 * 1024 * 1024,
  maxWriteBufferNumber: 2,
  enableStatistics: false,
}
