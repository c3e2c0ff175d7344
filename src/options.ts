/**
 * The options of `openIndex`, each with its default (the values live in src/defaults.ts), and their resolution.
 */
import type { ChildSpec } from '../actors/policy.js'
import type { ShardPolicy } from '../actors/shard-supervisor.js'
import { systemClock, type Clock } from './clock.js'
import * as defaults from './defaults.js'
import { rocksEngine, type Engine } from './engine.js'
import { InvalidInput } from './errors.js'
import { checkInteger } from './meta.js'

/** A partial child spec: omitted fields keep their defaults. */
export interface ChildSpecOptions {
  readonly restart?: ChildSpec['restart']
  readonly intensity?: Partial<ChildSpec['intensity']>
  readonly backoff?: Partial<ChildSpec['backoff']>
  readonly resetAfterMs?: number
}

/** RocksDB settings the binding exposes. */
export interface RocksdbOptions {
  readonly maxOpenFiles?: number
  readonly maxBackgroundJobs?: number
  readonly writeBufferSize?: number
  readonly maxWriteBufferNumber?: number
  readonly enableStatistics?: boolean
}

export interface IndexOptions {
  /** The storage root directory (created if missing, in writer mode). Required. */
  readonly root: string
  /**
   * `writer` (default): this index owns the primaries of the root (one process at a time: RocksDB locks each shard
   * directory). `reader`: readers only, for another process than the writer; writes are refused; reads are `bounded`
   * by default, or `after` a write token.
   */
  readonly mode?: 'writer' | 'reader'
  readonly freshness?: {
    /** Staleness bound of `bounded` reads, ms. Default 1,000. */
    readonly maxStalenessMs?: number
    /** Flush the primary's memtable after this many records written since the last flush. Default 30,000. */
    readonly flushEveryRecords?: number
    /** Flush the primary's memtable when anything waited unflushed this long, ms. Default 5,000. */
    readonly flushIntervalMs?: number
  }
  /** Shards per topic. Default: 16 for a new root; an existing root keeps its count (a different value is refused). */
  readonly shards?: number
  readonly readers?: {
    /** Readers per shard once its primary opened. Default 1. */
    readonly min?: number
    /** Most readers per shard. Default 4. */
    readonly max?: number
    /** Grow when reads in flight per serving reader reach this. Default 8. */
    readonly growAt?: number
    /** Retire readers (above min) idle this long, ms. Default 30,000. */
    readonly idleMs?: number
    /** Recycle readers this old, ms. Default 300,000. */
    readonly maxLifetimeMs?: number
    /** Refreshes at once per shard. Default 1. */
    readonly refreshesPerShard?: number
  }
  readonly supervision?: {
    /** Default: permanent, 10 restarts in 60 s, backoff 100 ms..10 s x2 jitter 0.2, reset after 30 s. */
    readonly primary?: ChildSpecOptions
    /** Default: transient, 20 restarts in 60 s, backoff 50 ms..5 s x2 jitter 0.2, reset after 30 s. */
    readonly readers?: ChildSpecOptions
  }
  readonly queues?: {
    /** Writes pending per shard before `Overloaded`. Default 1024. */
    readonly maxPendingWrites?: number
    /** Reads waiting for a primary per shard before `Overloaded`. Default 4096. */
    readonly maxPendingReads?: number
  }
  readonly rocksdb?: {
    /** Default: the seed's: maxOpenFiles 10000, 4 background jobs, 64 MB write buffers x 4. */
    readonly primary?: RocksdbOptions
    /** Default: maxOpenFiles -1 (required beside a live primary), 2 background jobs. */
    readonly reader?: RocksdbOptions
  }
  /** Native opens (opens and refreshes) at once in this process, shared by every index in it. Default 2. */
  readonly maxConcurrentOpens?: number
  /** Pool maintenance period, ms. Default 1,000. */
  readonly maintenanceIntervalMs?: number
  /** How long close() waits before releasing everything anyway, ms. Default 10,000. */
  readonly closeTimeoutMs?: number
  /** Time source for every timer. Default: the system clock. Tests pass a ManualClock. */
  readonly clock?: Clock
  /** Random numbers in [0, 1) for backoff jitter. Default Math.random. */
  readonly random?: () => number
  /** The storage engine. Default rocksdb-native; pass a FaultInjector to inject faults. */
  readonly engine?: Engine
}

/** Options with every default applied. */
export interface ResolvedOptions {
  readonly root: string
  readonly mode: 'writer' | 'reader'
  readonly freshness: { maxStalenessMs: number; flushEveryRecords: number; flushIntervalMs: number }
  readonly shards: number | undefined
  readonly policy: ShardPolicy
  readonly pool: { growAt: number; idleMs: number; maxLifetimeMs: number; refreshesPerShard: number }
  readonly queues: { maxPendingWrites: number; maxPendingReads: number }
  readonly rocksdb: { primary: Required<RocksdbOptions>; reader: Required<RocksdbOptions> }
  readonly maxConcurrentOpens: number
  readonly maintenanceIntervalMs: number
  readonly closeTimeoutMs: number
  readonly clock: Clock
  readonly random: () => number
  readonly engine: Engine
}

const spec = (base: ChildSpec, o: ChildSpecOptions | undefined, field: string): ChildSpec => {
  const s: ChildSpec = {
    restart: o?.restart ?? base.restart,
    intensity: { ...base.intensity, ...o?.intensity },
    backoff: { ...base.backoff, ...o?.backoff },
    resetAfterMs: o?.resetAfterMs ?? base.resetAfterMs,
  }
  if (!['permanent', 'transient', 'temporary'].includes(s.restart)) {
    throw new InvalidInput({ field: `${field}.restart`, message: `${field}.restart: must be permanent, transient or temporary` })
  }
  checkInteger(`${field}.intensity.maxRestarts`, s.intensity.maxRestarts)
  checkInteger(`${field}.intensity.withinMs`, s.intensity.withinMs)
  checkInteger(`${field}.backoff.minMs`, s.backoff.minMs)
  checkInteger(`${field}.backoff.maxMs`, s.backoff.maxMs)
  checkInteger(`${field}.resetAfterMs`, s.resetAfterMs)
  if (!(s.backoff.factor >= 1) || !(s.backoff.jitter >= 0 && s.backoff.jitter <= 1)) {
    throw new InvalidInput({ field: `${field}.backoff`, message: `${field}.backoff: factor must be >= 1 and jitter in [0, 1]` })
  }
  return s
}

/** Applies defaults and validates; throws InvalidInput naming the first bad option. */
export const resolveOptions = (o: IndexOptions): ResolvedOptions => {
  if (typeof o !== 'object' || o === null || typeof o.root !== 'string' || o.root.length === 0) {
    throw new InvalidInput({ field: 'root', message: 'root: a non-empty directory path is required' })
  }
  const min = checkInteger('readers.min', o.readers?.min ?? defaults.readerPool.min, 64)
  const max = checkInteger('readers.max', o.readers?.max ?? Math.max(defaults.readerPool.max, min), 64)
  if (max < min) throw new InvalidInput({ field: 'readers.max', message: `readers.max (${max}) must be >= readers.min (${min})` })
  const positive = (field: string, v: number) => {
    checkInteger(field, v)
    if (v < 1) throw new InvalidInput({ field, message: `${field}: must be at least 1` })
    return v
  }
  const mode = o.mode ?? 'writer'
  if (mode !== 'writer' && mode !== 'reader') throw new InvalidInput({ field: 'mode', message: `mode: must be writer or reader, got ${String(mode)}` })
  if (mode === 'reader' && min < 1) {
    throw new InvalidInput({ field: 'readers.min', message: 'readers.min: a reader-mode index serves reads from readers only, so it needs at least 1' })
  }
  const primary = spec(defaults.primarySpec, o.supervision?.primary, 'supervision.primary')
  if (primary.restart === 'temporary') {
    throw new InvalidInput({ field: 'supervision.primary.restart', message: 'supervision.primary.restart: a shard cannot do without its primary: permanent or transient' })
  }
  return {
    root: o.root,
    mode,
    freshness: {
      maxStalenessMs: checkInteger('freshness.maxStalenessMs', o.freshness?.maxStalenessMs ?? defaults.freshness.maxStalenessMs),
      flushEveryRecords: positive('freshness.flushEveryRecords', o.freshness?.flushEveryRecords ?? defaults.freshness.flushEveryRecords),
      flushIntervalMs: positive('freshness.flushIntervalMs', o.freshness?.flushIntervalMs ?? defaults.freshness.flushIntervalMs),
    },
    shards: o.shards,
    policy: {
      primary,
      readers: { ...spec(defaults.readerSpec, o.supervision?.readers, 'supervision.readers'), min, max },
    },
    pool: {
      growAt: positive('readers.growAt', o.readers?.growAt ?? defaults.readerPool.growAt),
      idleMs: checkInteger('readers.idleMs', o.readers?.idleMs ?? defaults.readerPool.idleMs),
      maxLifetimeMs: checkInteger('readers.maxLifetimeMs', o.readers?.maxLifetimeMs ?? defaults.readerPool.maxLifetimeMs),
      refreshesPerShard: positive('readers.refreshesPerShard', o.readers?.refreshesPerShard ?? defaults.readerPool.refreshesPerShard),
    },
    queues: {
      maxPendingWrites: positive('queues.maxPendingWrites', o.queues?.maxPendingWrites ?? defaults.queues.maxPendingWrites),
      maxPendingReads: positive('queues.maxPendingReads', o.queues?.maxPendingReads ?? defaults.queues.maxPendingReads),
    },
    rocksdb: {
      primary: { ...defaults.primaryRocksdb, ...o.rocksdb?.primary },
      // A reader beside a live primary must open every table file up front; this one is not negotiable.
      reader: { ...defaults.readerRocksdb, ...o.rocksdb?.reader, maxOpenFiles: -1 },
    },
    maxConcurrentOpens: positive('maxConcurrentOpens', o.maxConcurrentOpens ?? defaults.maxConcurrentOpens),
    maintenanceIntervalMs: positive('maintenanceIntervalMs', o.maintenanceIntervalMs ?? defaults.maintenanceIntervalMs),
    closeTimeoutMs: checkInteger('closeTimeoutMs', o.closeTimeoutMs ?? defaults.closeTimeoutMs),
    clock: o.clock ?? systemClock,
    random: o.random ?? Math.random,
    engine: o.engine ?? rocksEngine,
  }
}
