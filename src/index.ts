/**
 * rockvisor's public surface. Everything a user imports comes from here.
 *
 * ```ts
 * const index = await openIndex({ root: './data' })
 * await index.batchPut('orders', 7, [{ msgId: 'm1', timestamp: 1700000000000, segmentId: 0, offset: 0, msgLen: 120 }])
 * await index.getByMsgId('orders', 7, 'm1')   // => the meta
 * await index.close()
 * ```
 *
 * Thread-safety, stated once: an `Index` may be used by any number of concurrent callers. Writes to one shard are
 * applied in the order they were issued; a read reflects every write this index acknowledged before the read was
 * issued (read-your-writes). Every method rejects only with a {@link RockvisorError}; invalid input is rejected before
 * anything touches the disk.
 */
import type { InspectionEvent } from 'xstate'
import type { LifecycleEvent } from '../actors/events.js'
import * as defaults from './defaults.js'
import { Closed, InvalidInput, StorageFailure } from './errors.js'
import type { FaultOp, FaultTarget } from './faults.js'
import { decodeIdEntry, idKeyOf, segmentOffsetKey } from './keys.js'
import { PartitionMsgIds } from './msgids.js'
import { checkShards, checkTopicShards, openRoot, prepareShardDir, shardAddress, shardOf, topicOfDirName, type ShardAddress } from './layout.js'
import { checkBatch, checkInteger, checkPartition, checkSegmentOffset, checkTextBytes, checkTimeRange, checkTopic, limits, reading, type MessageMeta, type SegmentOffset } from './meta.js'
import { resolveOptions, type IndexOptions } from './options.js'
import { Runtime, type CrashTarget, type IndexStats } from './runtime.js'
import * as store from './store.js'
import { openedAtFirstNext } from './opened.js'
import type { Deadline, Need, ShardRuntime } from './shard.js'
import { makeToken, parseToken, type WriteToken } from './tokens.js'

export type { MessageMeta, SegmentOffset } from './meta.js'
export { limits } from './meta.js'
export {
  InvalidInput,
  Overloaded,
  Timeout,
  ShardUnavailable,
  StorageFailure,
  Closed,
  isRockvisorError,
  isTransient,
  errorTags,
  type RockvisorError,
  type StorageFailureReason,
  type FailureCause,
} from './errors.js'
export type { IndexOptions, ChildSpecOptions, RocksdbOptions } from './options.js'
export type { IndexStats, ShardStats, CrashTarget } from './runtime.js'
export type { LifecycleEvent, LifecycleKind } from '../actors/events.js'
export type { ChildSpec, Backoff, Intensity } from '../actors/policy.js'
export { ManualClock, systemClock, type Clock } from './clock.js'
export { FaultInjector, type FaultOp, type FaultTarget, type FaultKind } from './faults.js'
export { rocksEngine, type Engine, type StorageHandle, type OpenOptions } from './engine.js'
export {
  shardOf,
  topicDirName,
  rebuildManifest,
  type RebuildManifestOptions,
  type RebuiltManifest,
  type FoundTopic,
  type FoundShard,
} from './layout.js'
export { parseToken, type WriteToken } from './tokens.js'
export * as defaults from './defaults.js'

/** A checked (topic, partition): where it lives, and its shard once the index created it. */
interface Route {
  readonly topic: string
  readonly partition: number
  readonly shardNumber: number
  readonly address: ShardAddress
  shard: ShardRuntime | undefined
  /** The need of the last `fresh` read of this route (shared while the shard's sequence stays the same). */
  fresh: Need
}

/** A read routed to its shard: the partition, the shard, and what the read needs of a view. */
interface RoutedRead {
  readonly partition: number
  readonly shard: ShardRuntime
  readonly need: Need
}

/** Decodes the msgId of a by-segment-offset entry (a point read's decoder: it needs no context). */
const msgIdOfSegmentOffset = (_: unknown, value: Uint8Array): string => store.msgIdOfSegmentOffsetValue(value)

/** The greatest of `bound` and the places of `metas` (`null` and no metas: null). */
const highestPlace = (bound: SegmentOffset | null, metas: readonly MessageMeta[]): SegmentOffset | null => {
  let high = bound
  for (const m of metas) if (high === null || store.placeAfter(m, high)) high = m
  return high === null ? null : { segmentId: high.segmentId, offset: high.offset }
}

/** Most (topic, partition) routes an index keeps checked (see `routes` in openIndex). */
const maxCachedRoutes = 16_384

/** A generous estimate of the bytes of a deleted meta's three tombstones (keys up to a 1 KiB msgId). */
const tombstoneBytes = 3 * 1100

/** Whether a shard directory holds no database (reader mode: nothing to read). A damaged one is not absent. */
const shardDirAbsent = (dir: string): Promise<boolean> =>
  prepareShardDir(dir, 'reader').then(
    (state) => state === 'absent',
    () => false,
  )

/** A value for an error message: JSON where it can be (strings quoted), else its String, cut at 80 characters. */
const show = (value: unknown): string => {
  let text: string | undefined
  try {
    text = typeof value === 'function' ? 'a function' : typeof value === 'bigint' ? `${value}n` : JSON.stringify(value)
  } catch {
    // A cycle, or a throwing toJSON: fall back to the type.
  }
  return (text ?? (typeof value === 'object' ? 'an object' : String(value))).slice(0, 80)
}

/** Whether `id` is a shard id of a root with `shards` shards: `<topic dir>/<shard>` as {@link shardAddress} makes it. */
const isShardId = (id: string, shards: number): boolean => {
  const slash = id.lastIndexOf('/')
  const dir = id.slice(0, slash)
  const shard = id.slice(slash + 1)
  return (
    slash > 0 &&
    /^(?:0|[1-9][0-9]*)$/.test(shard) &&
    Number(shard) < shards &&
    (topicOfDirName(dir) !== undefined || /^~h[0-9a-f]{64}$/.test(dir))
  )
}

/** Where a (topic, partition) lives. */
export interface ShardInfo {
  /** `<topic dir>/<shard>`, the id used in stats, events and errors. */
  readonly id: string
  readonly shard: number
  /** The RocksDB directory. */
  readonly dir: string
}

/** The fault-injection hook of a live index (for tests, chaos runs and the CLI). It wraps the real engine. */
export interface IndexFaults {
  /**
   * Crashes the primary, one reader (`reader-N`) or every reader of the shard holding (topic, partition): their
   * handles are broken (requests on them fail and are retried elsewhere) and their actors fail and are restarted
   * under the shard's policy. A scan running on a crashed handle fails at its next read of the engine (after the
   * entries it read before) with StorageFailure, reason `injected`. Returns how many handles it crashed (0 if the
   * shard has none ready); any other `target` is InvalidInput.
   */
  crash(topic: string, partition: number, target: CrashTarget): number
  /**
   * Makes the engine fail the next `n` (default 1) opens / reads / writes matching `target` (`role`: 'primary' or
   * 'reader'; `dir`: a directory prefix). An unknown op or target key, or an `n` that is not a non-negative integer,
   * is InvalidInput and arms nothing.
   */
  failNext(op: FaultOp, n?: number, target?: FaultTarget): void
  /** Native handles open now. */
  readonly liveHandles: number
  /** Most read-write handles ever open at once on one directory (must be 1). */
  readonly maxWritersPerDir: number
}

/**
 * How fresh a read must be. The default in writer mode is `fresh` (read-your-writes): the read reflects every write
 * this index acknowledged before the read was issued. In reader mode it is `bounded` (or just `after` a token).
 */
/**
 * Every request's bound on waiting. Past `timeoutMs` (default `requestTimeoutMs`, 30,000), or once `signal` aborts, a
 * request that has not started its I/O yet fails with {@link Timeout} and never runs (a timed-out write was not
 * applied). I/O that started finishes.
 */
export interface RequestOptions {
  /** Most time to wait, ms, an integer in [1, 86,400,000]. */
  readonly timeoutMs?: number
  /** Aborts the wait (the request then fails with Timeout, `aborted: true`). */
  readonly signal?: AbortSignal
}

export interface ReadOptions extends RequestOptions {
  /**
   * Reflect at least this write: a token from `batchPut`/`deleteBefore`, possibly of another process. Combines with
   * `fresh` and `bounded`.
   */
  readonly after?: WriteToken
  /**
   * `fresh`: read-your-writes (writer mode only). `bounded`: the view may lag the newest write by at most
   * `maxStalenessMs` (default `freshness.maxStalenessMs`, 1,000): it was taken no earlier than that long ago.
   * `primary`: read through the primary (writer mode only).
   */
  readonly consistency?: 'fresh' | 'bounded' | 'primary'
  /** The bound of a `bounded` read, ms. */
  readonly maxStalenessMs?: number
}

export interface Index {
  /** The storage root. */
  readonly root: string
  /** `writer` or `reader` (see IndexOptions.mode). */
  readonly mode: 'writer' | 'reader'
  /** Shards per topic (fixed when the root was created). */
  readonly shards: number

  /**
   * Writes metas of (topic, partition) in one atomic batch: by msg id, by time and by segment offset. A meta
   * replaces any stored meta with the same msgId and any with the same (segmentId, offset). Resolves once the batch
   * is in RocksDB's write-ahead log (it survives a process crash; see README, Durability) with the bytes of keys
   * and values written and the write's token (see ReadOptions.after). Rejects with InvalidInput (nothing written)
   * for a bad batch or a reader-mode index, Overloaded when the shard's write queue is full, ShardUnavailable when
   * its primary is exhausted, StorageFailure (`locked`: another process owns the directory), Closed.
   */
  batchPut(topic: string, partition: number, metas: readonly MessageMeta[], options?: RequestOptions): Promise<{ bytes: number; token: WriteToken }>
  /** The meta stored under msgId, or `undefined`. */
  getByMsgId(topic: string, partition: number, msgId: string, options?: ReadOptions): Promise<MessageMeta | undefined>
  /**
   * The segment offsets of the first and last meta (by timestamp, then segment offset) with timestamp in
   * [startTs, endTs], or `undefined` if none. Two seeks whatever the partition holds.
   */
  getRangeByTime(
    topic: string,
    partition: number,
    startTs: number,
    endTs: number,
    options?: ReadOptions,
  ): Promise<{ first: SegmentOffset; last: SegmentOffset } | undefined>
  /** The msgId stored at that segment offset, or `undefined` (callers validating a committed offset treat it as a mismatch). */
  getMsgIdBySegmentOffset(topic: string, partition: number, so: SegmentOffset, options?: ReadOptions): Promise<string | undefined>
  /**
   * Streams the metas with timestamp in [startTs, endTs] in time order, with bounded memory. Arguments are checked
   * when called (InvalidInput is thrown synchronously); I/O starts at the first iteration. `limit` caps the count.
   * The scan reads one view: it holds its handle until it ends or the consumer stops (`break`, `return()`). Between
   * two entries it waits for its consumer, which `close()` does not wait for: closing the index ends the scan, and
   * its next `next()` rejects with Closed. A handle released under a running scan fails it with StorageFailure
   * (`injected` after `faults.crash`, else `io` saying that the handle was released).
   */
  scanByTime(topic: string, partition: number, startTs: number, endTs: number, options?: ReadOptions & { limit?: number }): AsyncIterable<MessageMeta>
  /**
   * Retention: removes every meta of (topic, partition) with timestamp < `before`, from all three views. The token
   * covers the whole retention (it is the shard's sequence after it).
   */
  deleteBefore(topic: string, partition: number, before: number, options?: RequestOptions): Promise<{ deleted: number; token: WriteToken }>

  /** Where (topic, partition) is stored. Pure. */
  locate(topic: string, partition: number): ShardInfo
  /** A snapshot of every shard's supervision state, pool, restarts and queues, and the totals. */
  stats(): IndexStats
  /**
   * Subscribes to lifecycle events (created, opened, failed, restarted, degraded, recovered, retired, closed, ...).
   * `listener` must be a function (else InvalidInput). A listener that throws (or returns a promise that rejects) is
   * reported once, with `console.warn` naming the event and the error; it never reaches the supervisors, and the
   * other listeners still get every event.
   */
  subscribe(listener: (event: LifecycleEvent) => void): () => void
  /**
   * Restarts what exhausted its restart intensity (event `recovered`); a shard where nothing is exhausted is left
   * alone:
   *
   * - `recover()`: in every shard of this index;
   * - `recover(shardId)`: in the shard with that id, `<topic dir>/<shard>`, as {@link ShardUnavailable}`.shard`,
   *   stats and events give it (a malformed id, or one this index has no shard for, is InvalidInput naming it);
   * - `recover(topic, partition)`: in the shard holding (topic, partition), if this index has created it.
   *
   * InvalidInput also for a topic without a partition or a partition without a topic; Closed once the index is
   * closed (except `recover()`, which then does nothing).
   */
  recover(): void
  recover(shardId: string): void
  recover(topic: string, partition: number): void
  /** Fault injection (see {@link IndexFaults}). */
  readonly faults: IndexFaults
  /**
   * Stops accepting requests, lets accepted ones finish (also those waiting for a primary that is opening; those
   * waiting for a primary that backs off after a failure, or gave up, fail with Closed), closes readers then
   * primaries, and releases every native handle (forcibly after `closeTimeoutMs`). Scans waiting for their consumer are not waited for: they end, and
   * their next `next()` rejects with Closed. Idempotent: later calls return the same promise. The equivalent of the
   * seed's cleanup_storage_root for this root.
   */
  close(): Promise<void>
}

/** Extra options for observers (the state-machine inspector and the transition-coverage tests). */
export interface ObserverOptions {
  /** Receives XState inspection events of every actor in the tree. */
  readonly inspect?: (event: InspectionEvent) => void
}

/**
 * Opens (creating if needed) the index stored under `options.root`. Shards and their actors are created lazily, on
 * the first request for a (topic, shard). Rejects with InvalidInput for bad options (including a `shards` that
 * disagrees with an existing root) and StorageFailure if the root cannot be created, or with reason `corruption`
 * (writing nothing) if its `rockvisor.json` is missing beside existing topic directories, unreadable, or disagrees
 * with the shard directories on disk: see {@link rebuildManifest}.
 */
export const openIndex = async (options: IndexOptions & ObserverOptions): Promise<Index> => {
  const opts = resolveOptions(options)
  const shards = await openRoot(opts.root, opts.shards === undefined ? undefined : checkShards(opts.shards), defaults.defaultShards, opts.mode === 'writer')
  const runtime = new Runtime(opts, shards, options.inspect)
  let closed = false

  /**
   * Routes already checked, by topic then partition: a (topic, partition) is validated and its shard address derived
   * once, not on every request. Bounded: past {@link maxCachedRoutes} entries the cache starts over.
   */
  const routes = new Map<string, Map<number, Route>>()
  let cachedRoutes = 0

  /** Checks (topic, partition) (once: see `routes`) and finds where it lives. Pure: creates nothing. */
  const routeOf = (topic: unknown, partition: unknown): Route => {
    if (typeof topic === 'string' && typeof partition === 'number') {
      const hit = routes.get(topic)?.get(partition)
      if (hit !== undefined) return hit
    }
    const t = checkTopic(topic)
    const p = checkPartition(partition)
    const n = shardOf(p, shards)
    const route: Route = { topic: t, partition: p, shardNumber: n, address: shardAddress(opts.root, t, n), shard: undefined, fresh: { seq: 0 } }
    if (cachedRoutes >= maxCachedRoutes) {
      routes.clear()
      cachedRoutes = 0
    }
    let byPartition = routes.get(t)
    if (byPartition === undefined) routes.set(t, (byPartition = new Map()))
    byPartition.set(p, route)
    cachedRoutes++
    return route
  }

  /** The route of (topic, partition) of an open index, with its shard if this index created it already. */
  const routeOpen = (topic: unknown, partition: unknown): Route => {
    if (closed) throw new Closed({ message: `the index at ${opts.root} is closed` })
    const route = routeOf(topic, partition)
    // A shard, once created, stays this index's until it closes.
    route.shard ??= runtime.shards.get(route.address.id)
    return route
  }

  /**
   * Checks (topic, partition) and finds where it lives: the shard's address, and its runtime if it was created
   * already. Never creates anything.
   */
  const locate = (topic: unknown, partition: unknown) => {
    const r = routeOpen(topic, partition)
    return { topic: r.topic, partition: r.partition, shardNumber: r.shardNumber, address: r.address, existing: r.shard }
  }

  /** Routes a write: the shard of (topic, partition), created (exactly once) if need be. */
  const route = (topic: unknown, partition: unknown) => {
    const l = locate(topic, partition)
    return { partition: l.partition, shard: l.existing ?? runtime.shard(l.topic, l.shardNumber) }
  }
  // Validation errors surface as rejected promises, like every other failure of an async method.
  const attempt = async <T>(fn: () => Promise<T>): Promise<T> => fn()

  /**
   * Per shard address: the writes on their way to the shard's write queue, as a chain that settles once the last of
   * them queued (or returned without a write). A retention of a shard this index has not created yet looks at the
   * shard's directory before it queues (it creates nothing for a shard nobody wrote); every write to that shard
   * issued meanwhile joins the chain and queues after the writes before it: writes of one shard are applied in the
   * order they were issued. (Found by the model run: a `batchPut` issued just after such a `deleteBefore` overtook
   * it; then a `deleteBefore` issued after a `batchPut` that waited behind one overtook that `batchPut`.)
   */
  const writesOnTheirWay = new Map<string, Promise<void>>()

  /**
   * The place of a write of shard `id` among the writes on their way (see writesOnTheirWay): `after`, the writes
   * issued before it still on their way (undefined: none), and `queued()`, to call once it queued or will not. With
   * none before it and `holds` false (it will queue in this turn), it takes no place: nothing to wait for, nothing
   * held. `holds`: it awaits something else before it queues.
   */
  const placeAmongWrites = (id: string, holds: boolean): { after: Promise<void> | undefined; queued: () => void } => {
    const before = writesOnTheirWay.get(id)
    if (before === undefined && !holds) return { after: undefined, queued: () => {} }
    let queued: () => void = () => {}
    const turn = new Promise<void>((resolve) => (queued = resolve))
    const mine = before === undefined ? turn : before.then(() => turn)
    writesOnTheirWay.set(id, mine)
    void mine.then(() => {
      if (writesOnTheirWay.get(id) === mine) writesOnTheirWay.delete(id)
    })
    return { after: before, queued }
  }

  const writerOnly = (what: string) => {
    if (opts.mode === 'reader') {
      throw new InvalidInput({ field: 'mode', message: `mode: ${what} needs a writer-mode index; this one (${opts.root}) was opened with mode 'reader'` })
    }
  }

  /** The options each kind of call takes (any other key is InvalidInput). */
  const requestKeys = {
    write: ['timeoutMs', 'signal'],
    read: ['after', 'consistency', 'maxStalenessMs', 'timeoutMs', 'signal'],
    scan: ['after', 'consistency', 'maxStalenessMs', 'limit', 'timeoutMs', 'signal'],
  } as const satisfies Record<string, readonly string[]>

  // Deadlines and needs are immutable: the default ones are shared by the requests made in the same millisecond (and,
  // for a need, of the same shard sequence), rather than made anew for each.
  let defaultDeadline: Deadline = { at: Number.NaN, timeoutMs: opts.requestTimeoutMs, signal: undefined }
  let boundedNeed: Need = { seq: 0, since: Number.NaN }

  /** A request's deadline, from its options (checked here, before any I/O). */
  const deadlineOf = (o: RequestOptions | undefined, kind: keyof typeof requestKeys = 'read'): Deadline => {
    if (o === undefined) {
      const at = opts.clock.now() + opts.requestTimeoutMs
      if (defaultDeadline.at !== at) defaultDeadline = { at, timeoutMs: opts.requestTimeoutMs, signal: undefined }
      return defaultDeadline
    }
    if (typeof o !== 'object' || o === null) throw new InvalidInput({ field: 'options', message: 'options: must be an object' })
    return reading('options', () => {
      // An option this call does not take (a typo such as `timeOutMs`, a read's option given to a write) is refused,
      // not ignored.
      const allowed: readonly string[] = requestKeys[kind]
      for (const key of Object.keys(o)) {
        if (!allowed.includes(key)) throw new InvalidInput({ field: key, message: `${key}: not an option of this call, which takes ${allowed.join(', ')}` })
      }
      const timeoutMs = o.timeoutMs === undefined ? opts.requestTimeoutMs : checkInteger('timeoutMs', o.timeoutMs, 86_400_000)
      if (timeoutMs < 1) throw new InvalidInput({ field: 'timeoutMs', message: 'timeoutMs: must be at least 1' })
      const signal = o.signal
      if (signal !== undefined && !(signal instanceof AbortSignal)) throw new InvalidInput({ field: 'signal', message: 'signal: must be an AbortSignal' })
      return { at: opts.clock.now() + timeoutMs, timeoutMs, signal }
    })
  }

  /** What a read of shard `shardId` needs of its handle, from its options (checked here, before any I/O). */
  const needOf = (shardId: string, ackSeq: number, o: ReadOptions | undefined): Need => {
    // The defaults: `fresh` in writer mode, `bounded` by freshness.maxStalenessMs in reader mode.
    if (o === undefined) {
      if (opts.mode === 'writer') return { seq: ackSeq }
      const since = opts.clock.now() - opts.freshness.maxStalenessMs
      if (boundedNeed.since !== since) boundedNeed = { seq: 0, since }
      return boundedNeed
    }
    if (typeof o !== 'object' || o === null) throw new InvalidInput({ field: 'options', message: 'options: must be an object' })
    const { after, consistency: asked, maxStalenessMs } = reading('options', () => ({ after: o.after, consistency: o.consistency, maxStalenessMs: o.maxStalenessMs }))
    const token = after === undefined ? 0 : parseToken(after, shardId).sequence
    const consistency = asked ?? (opts.mode === 'reader' ? (after !== undefined ? 'after' : 'bounded') : 'fresh')
    switch (consistency) {
      case 'after':
        return { seq: token }
      case 'fresh':
        writerOnly("consistency 'fresh' (read-your-writes; in reader mode pass a token as `after`)")
        return { seq: Math.max(token, ackSeq) }
      case 'bounded': {
        const bound = checkInteger('maxStalenessMs', maxStalenessMs ?? opts.freshness.maxStalenessMs)
        return { seq: token, since: opts.clock.now() - bound }
      }
      case 'primary':
        writerOnly("consistency 'primary'")
        // The primary holds every acknowledged write; a token still counts: one beyond the shard's sequence is refused.
        return { seq: token, primary: true }
      default:
        throw new InvalidInput({ field: 'consistency', message: `consistency: must be fresh, bounded or primary, got ${String(consistency)}` })
    }
  }

  /** What a point read of a shard that exists needs (as {@link needOf}; a writer's default need shared per route). */
  const pointNeed = (route: Route, shard: ShardRuntime, o: ReadOptions | undefined): Need => {
    if (o !== undefined || opts.mode === 'reader') return needOf(shard.address.id, shard.ackSeq, o)
    if (route.fresh.seq !== shard.ackSeq) route.fresh = { seq: shard.ackSeq }
    return route.fresh
  }

  /**
   * Routes a read: every argument is checked before anything is created, and a read never creates anything. A shard
   * this index has not created yet whose directory holds no database (nobody wrote it: a topic never used, a typo)
   * is answered as empty without creating or opening anything, in both modes; only a reader-mode read that waits
   * for a token is routed (the writer, another process, may still create the shard). In writer mode this index is
   * the root's only writer, so a token of such a shard names a write the root never had: `InvalidInput`, unless its
   * sequence is 0 (a shard's sequence before its first write). A directory that holds a damaged database is not
   * "nobody wrote it": the shard is routed, and refuses with the cause. A topic created under another shard count
   * than the root's manifest says (see checkTopicShards) is a `corruption` StorageFailure.
   */
  const routeRead = (topic: unknown, partition: unknown, o: ReadOptions | undefined): RoutedRead | Promise<RoutedRead | undefined> => {
    const { topic: t, partition: p, shardNumber, address, existing } = locate(topic, partition)
    const need = needOf(address.id, existing?.ackSeq ?? 0, o)
    // A shard this index has: routed now, so that a read issued before close() is admitted before the close begins.
    if (existing !== undefined) return { partition: p, shard: existing, need }
    return routeNew(t, p, shardNumber, address, need, o)
  }

  /** Topics whose record of the shard count (see checkTopicShards) agreed with the root's. */
  const countChecked = new Set<string>()

  /** {@link routeRead} of a shard this index has not created: created only if its directory holds a database. */
  const routeNew = async (t: string, p: number, shardNumber: number, address: ShardAddress, need: Need, o: ReadOptions | undefined): Promise<RoutedRead | undefined> => {
    // A shard count the topic was not created under would route this read to another shard than the one holding it:
    // an empty answer would be a lie (a shard that opens checks it too).
    if (!countChecked.has(t) && (await checkTopicShards(opts.root, t, shards))) {
      // Only a record that agreed is remembered (a topic without one yet may be created later), in a bounded set.
      if (countChecked.size >= maxCachedRoutes) countChecked.clear()
      countChecked.add(t)
    }
    if (await shardDirAbsent(address.dir)) {
      if (need.seq === 0) return undefined
      // A token says its write is in this shard's database, and there is none: waiting would not make one appear.
      if (opts.mode === 'writer') {
        throw new InvalidInput({
          field: 'after',
          message: `after: the token ${JSON.stringify(o?.after)} names a write of shard ${address.id}, but the root ${opts.root} holds no database for that shard: the token is not from this root, or its write was lost`,
        })
      }
      throw new StorageFailure({
        reason: 'missing',
        path: address.dir,
        shard: address.id,
        message: `no database in ${address.dir}, but the read waits for sequence ${need.seq} of shard ${address.id}: the token is not from the root ${opts.root}, or the shard directory was removed`,
      })
    }
    // Made now, unless the index began closing meanwhile (runtime.shard refuses with Closed then).
    return { partition: p, shard: runtime.shard(t, shardNumber), need }
  }

  /**
   * Checks the single argument of `recover(shardId)`: the id of a shard this index has, `<topic dir>/<shard>` as
   * stats, events and errors give it. A string without `/` is taken for a topic that lacks its partition.
   */
  const shardIdOf = (id: unknown): string => {
    if (closed) throw new Closed({ message: `the index at ${opts.root} is closed` })
    if (typeof id !== 'string') {
      throw new InvalidInput({ field: 'shard', message: `shard: recover takes (), (shardId) or (topic, partition); got ${show(id)} alone` })
    }
    if (!id.includes('/')) {
      throw new InvalidInput({
        field: 'partition',
        message: `partition: required with the topic ${show(id)}; to recover by shard id pass "<topic dir>/<shard>" as ShardUnavailable.shard and stats give it`,
      })
    }
    if (!isShardId(id, shards)) {
      throw new InvalidInput({ field: 'shard', message: `shard: ${show(id)} is not a shard id of this root ("<topic dir>/<shard>", shard in [0, ${shards - 1}], as ShardUnavailable.shard and stats give it)` })
    }
    if (!runtime.shards.has(id)) {
      throw new InvalidInput({ field: 'shard', message: `shard: this index has no shard ${show(id)} (it has the shards it served since it opened: see stats()), so there is nothing to recover` })
    }
    return id
  }

  return {
    root: opts.root,
    mode: opts.mode,
    shards,
    batchPut: (topic, partition, metas, options) =>
      attempt(async () => {
        writerOnly('batchPut')
        const batch = checkBatch(metas)
        const deadline = deadlineOf(options, 'write')
        if (batch.length === 0) {
          // Nothing to write, nothing to open: the token is the shard's current sequence.
          const { address, existing } = locate(topic, partition)
          return { bytes: 0, token: makeToken(address.id, existing?.ackSeq ?? 0) }
        }
        // (Looked up only while some write is on its way: the common write routes once.)
        let queued: (() => void) | undefined
        if (writesOnTheirWay.size > 0) {
          const place = placeAmongWrites(locate(topic, partition).address.id, false)
          queued = place.queued
          if (place.after !== undefined) await place.after
        }
        let p: number
        let shard: ShardRuntime
        try {
          ;({ partition: p, shard } = route(topic, partition))
        } finally {
          // Routed: its write is queued below, in this same turn, before any write that waited for it.
          queued?.()
        }
        return shard.write(async (handle, nextStamp) => {
          // The places the partition may hold (one seek at its first write), raised before the write by the batch's
          // own places: whatever the write's outcome, no place of the partition lies above the bound.
          const known = shard.placeBounds.get(p)
          const placeBound = known !== undefined ? known : ((await store.lastPlace(handle, p)) ?? null)
          shard.placeBounds.set(p, highestPlace(placeBound, batch))
          // The msgIds the partition may hold: one more chunk of its by-id view learned, until the view is known.
          let msgIds = shard.msgIds.get(p)
          if (msgIds === undefined) shard.msgIds.set(p, (msgIds = new PartitionMsgIds(p, shard.msgIdBudget)))
          await msgIds.step(handle)
          const stamp = nextStamp()
          const { bytes } = await store.putMetas(handle, p, batch, stamp, { placeBound, msgIds })
          shard.wrote(bytes)
          return { bytes, token: makeToken(shard.address.id, stamp.seq) }
        }, batch.length * 3, deadline)
      }),
    // The point lookups: synchronous up to the shard's batch of point reads (see ShardRuntime.pointRead) once the
    // shard exists; every failure, validation included, is a rejected promise.
    getByMsgId: (topic, partition, msgId, options) => {
      try {
        const bytes = checkTextBytes('msgId', msgId, limits.msgIdBytes)
        const id = msgId as string
        const deadline = deadlineOf(options)
        const route = routeOpen(topic, partition)
        const key = idKeyOf(route.partition, id, bytes)
        const shard = route.shard
        if (shard === undefined) return Promise.resolve(routeRead(topic, partition, options)).then((r) => r && r.shard.pointRead(key, decodeIdEntry, id, r.need, deadline))
        return shard.pointRead(key, decodeIdEntry, id, pointNeed(route, shard, options), deadline)
      } catch (e) {
        return Promise.reject(e)
      }
    },
    getRangeByTime: (topic, partition, startTs, endTs, options) => {
      try {
        const [s, e] = checkTimeRange(startTs, endTs)
        const deadline = deadlineOf(options)
        // The window read: a view no write after it touched there serves the read without a refresh.
        const run = (r: RoutedRead) => r.shard.read((h) => store.getRangeByTime(h, r.partition, s, e), r.need, deadline, { partition: r.partition, from: s, to: e })
        // A shard this index has is read at once (admitted before a close() that follows in the same turn).
        const routed = routeRead(topic, partition, options)
        return routed instanceof Promise ? routed.then((r) => r && run(r)) : run(routed)
      } catch (e) {
        return Promise.reject(e)
      }
    },
    getMsgIdBySegmentOffset: (topic, partition, so, options) => {
      try {
        const checked = checkSegmentOffset(so)
        const deadline = deadlineOf(options)
        const route = routeOpen(topic, partition)
        const key = segmentOffsetKey(route.partition, checked)
        const shard = route.shard
        if (shard === undefined) {
          return Promise.resolve(routeRead(topic, partition, options)).then((r) => r && r.shard.pointRead(key, msgIdOfSegmentOffset, undefined, r.need, deadline))
        }
        return shard.pointRead(key, msgIdOfSegmentOffset, undefined, pointNeed(route, shard, options), deadline)
      } catch (e) {
        return Promise.reject(e)
      }
    },
    scanByTime: (topic, partition, startTs, endTs, options) => {
      const [s, e] = checkTimeRange(startTs, endTs)
      // Every argument is checked now; the shard is routed (and opened if need be) at the first iteration.
      deadlineOf(options, 'scan')
      const asked = options === undefined ? undefined : reading('options', () => options.limit)
      const limit = asked === undefined ? undefined : checkInteger('limit', asked)
      const { topic: t, partition: p, address } = locate(topic, partition)
      needOf(address.id, 0, options)
      return openedAtFirstNext(() => {
        const deadline = deadlineOf(options, 'scan')
        const scan = (r: RoutedRead | undefined) =>
          r?.shard.stream((h) => store.scanByTime(h, r.partition, s, e, limit), r.need, deadline, { partition: r.partition, from: s, to: e })
        // A shard this index has is scanned at once (admitted before a close() that follows in the same turn).
        const routed = routeRead(t, p, options)
        return routed instanceof Promise ? routed.then(scan) : scan(routed)
      })
    },
    deleteBefore: (topic, partition, before, options) =>
      attempt(async () => {
        writerOnly('deleteBefore')
        const ts = checkInteger('before', before)
        const deadline = deadlineOf(options, 'write')
        // A shard nobody wrote holds nothing to delete: answered without creating its directories (as a read).
        const { address, existing } = locate(topic, partition)
        // Writes to this shard issued from now on queue after this retention, and it after those issued before it
        // that are still on their way (see writesOnTheirWay).
        const { after, queued } = placeAmongWrites(address.id, existing === undefined)
        try {
          if (after !== undefined) await after
          // A write issued before it may have created the shard meanwhile (its directory may not be on disk yet: the
          // primary opens after the write queued): the retention then queues behind that write.
          if (existing === undefined && locate(topic, partition).existing === undefined && (await shardDirAbsent(address.dir))) {
            queued()
            return { deleted: 0, token: makeToken(address.id, 0) }
          }
        } catch (e) {
          queued()
          throw e
        }
        let shard: ShardRuntime
        let p: number
        try {
          ;({ partition: p, shard } = route(topic, partition))
        } finally {
          // Routed: its write is queued below, in this same turn, before any write that waited for it.
          queued()
        }
        // Counted chunk by chunk: a retry after a failure resumes where the first attempt stopped, and the metas that
        // attempt removed were removed all the same. Each deleted meta is 3 tombstones for the flush triggers.
        let deleted = 0
        // Its chunks count for the flush triggers one by one (a long retention flushes between chunks, as between
        // writes), so the memtable never grows past them.
        await shard.write(
          (handle, nextStamp, between) =>
            store.deleteBefore(handle, p, ts, nextStamp, (n) => {
              deleted += n
              shard.msgIds.get(p)?.removed(n)
              shard.wrote(n * tombstoneBytes)
              return between(n * 3)
            }),
          0,
          deadline,
        )
        return { deleted, token: makeToken(shard.address.id, shard.ackSeq) }
      }),
    locate: (topic, partition) => {
      const { shardNumber, address } = routeOf(topic, partition)
      return { id: address.id, shard: shardNumber, dir: address.dir }
    },
    stats: () => runtime.stats(),
    subscribe: (listener) => {
      if (typeof listener !== 'function') throw new InvalidInput({ field: 'listener', message: `listener: must be a function, got ${show(listener)}` })
      return runtime.subscribe(listener)
    },
    recover: (topic?: unknown, partition?: unknown) => {
      if (topic === undefined && partition === undefined) return runtime.recover()
      if (topic === undefined) throw new InvalidInput({ field: 'topic', message: `topic: required with a partition (recover(topic, partition)), got partition ${show(partition)} alone` })
      if (partition === undefined) return runtime.recover(shardIdOf(topic))
      const { existing } = locate(topic, partition)
      if (existing !== undefined) runtime.recover(existing.address.id)
    },
    faults: {
      crash: (topic, partition, target) => {
        const { existing } = locate(topic, partition)
        if (target !== 'primary' && target !== 'readers' && !(typeof target === 'string' && /^reader-(?:0|[1-9][0-9]*)$/.test(target))) {
          throw new InvalidInput({ field: 'target', message: `target: must be 'primary', 'readers' or 'reader-N' (a reader id as in stats and events), got ${show(target)}` })
        }
        return existing === undefined ? 0 : runtime.crash(existing.address.id, target)
      },
      failNext: (op, n = 1, target = {}) => runtime.failNext(op, n, target),
      get liveHandles() {
        return runtime.faults.liveHandles
      },
      get maxWritersPerDir() {
        return runtime.faults.maxWritersPerDir
      },
    },
    close: () => {
      closed = true
      return runtime.close()
    },
  }
}
