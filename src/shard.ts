/**
 * The data plane of one shard: which handles are ready (published by the machines' actions), the bounded queues,
 * and the request paths. A request never waits for an XState event: it finds a handle by a plain function call.
 * The shard talks back to its supervisor only on lifecycle matters: a fault (once per handle), a refresh, a scale-up.
 *
 * Freshness: every write batch stores the shard's next sequence; a handle's `seq` is the sequence its view reflects
 * and `openedAt` when that view was taken. A read states what it {@link Need}s: a sequence (read-your-writes: what
 * this index acknowledged; or a write token), a time its view must not predate (bounded staleness), or the primary.
 * It is served by the least-loaded reader that satisfies it; else, in writer mode, by the primary while the stalest
 * reader refreshes; in reader mode it waits (bounded) for a refresh.
 */
import type { ShardCommand } from '../actors/shard-supervisor.js'
import type { Clock } from './clock.js'
import { Closed, InvalidInput, Overloaded, ShardUnavailable, StorageFailure } from './errors.js'
import type { StorageHandle } from './engine.js'
import type { ShardAddress } from './layout.js'
import type { HandleTable, LeaseRecord } from './resources.js'

/** The limits a shard's data plane enforces. */
export interface ShardLimits {
  readonly maxPendingWrites: number
  readonly maxPendingReads: number
  readonly growAt: number
  readonly refreshesPerShard: number
  /** Flush the primary's memtable once this many records were written since the last flush. */
  readonly flushEveryRecords: number
}

/** What a read needs of the handle that serves it. */
export interface Need {
  /** The view must reflect at least this shard sequence. */
  readonly seq: number
  /** The view must have been taken at or after this clock time (bounded staleness). */
  readonly since?: number
  /** Only the primary will do. */
  readonly primary?: boolean
}

/** Whether a reader's view satisfies a need (never true for a primary-only need). */
export const satisfies = (record: LeaseRecord, need: Need): boolean =>
  !need.primary && record.seq >= need.seq && (need.since === undefined || record.openedAt >= need.since)

interface Waiter {
  readonly kind: 'read' | 'write'
  /** For reads: what a reader's view must satisfy to serve it. */
  readonly need: Need
  /** The handle table's ticket when the read began waiting: a handle opened since reflects everything written then. */
  readonly ticket: number
  readonly resolve: (r: LeaseRecord) => void
  readonly reject: (e: unknown) => void
}

export class ShardRuntime {
  primary: LeaseRecord | undefined
  /** Serving readers by reader id. */
  readonly readers = new Map<string, LeaseRecord>()
  /** Readers asked to refresh and not yet swapped. */
  readonly refreshing = new Set<string>()
  /** Sequence of the last write this process acknowledged on this shard. */
  ackSeq = 0
  /** Last sequence handed to a write batch. */
  seq = 0
  /** The primary exhausted its restart intensity (until RECOVER). */
  exhausted = false
  /** The readers exhausted their restart intensity (until RECOVER). */
  degraded = false
  /** Records written since the primary last flushed, and when the oldest of them was written. */
  unflushed = 0
  firstUnflushedAt = 0
  /** The directory is locked by another instance (set by a failed open, cleared by a successful one). */
  locked: StorageFailure | undefined
  closed = false
  /** Requests running or queued. */
  inflight = 0
  /** Writes queued or running. */
  pendingWrites = 0
  #waiters: Waiter[] = []
  #writeChain: Promise<unknown> = Promise.resolve()
  #scaleRequested = false
  #idle: (() => void) | undefined

  constructor(
    readonly address: ShardAddress,
    private readonly table: HandleTable,
    private readonly limits: ShardLimits,
    private readonly clock: Clock,
    private readonly send: (command: ShardCommand) => void,
    readonly mode: 'writer' | 'reader' = 'writer',
  ) {}

  // ---- called by the machines' provided actions ----

  /** The primary's handle is ready. Writes continue from the sequence stored on disk. */
  publishPrimary(record: LeaseRecord): void {
    this.primary = record
    this.exhausted = false
    this.locked = undefined
    this.seq = Math.max(this.seq, record.seq)
    this.ackSeq = Math.max(this.ackSeq, record.seq)
    const waiters = this.#waiters
    this.#waiters = []
    for (const w of waiters) w.resolve(record)
  }

  withdrawPrimary(lease: string): void {
    if (this.primary?.lease === lease) this.primary = undefined
  }

  publishReader(readerId: string, record: LeaseRecord): void {
    this.readers.set(readerId, record)
    this.refreshing.delete(readerId)
    this.#scaleRequested = false
    // Reads waiting for a view this fresh go now; the others ask for another refresh.
    const ready = this.#waiters.filter((w) => w.kind === 'read' && satisfies(record, w.need))
    // A view opened after the read began waiting reflects everything written by then: if it still does not reach
    // the read's token, the token is ahead of the data (not from this root, or its write was lost), and waiting for
    // more refreshes would spin. Such reads fail now.
    const ahead = this.#waiters.filter((w) => w.kind === 'read' && !ready.includes(w) && record.ticket >= w.ticket && record.seq < w.need.seq)
    this.#waiters = this.#waiters.filter((w) => !ready.includes(w) && !ahead.includes(w))
    for (const w of ready) w.resolve(record)
    for (const w of ahead) {
      w.reject(
        new InvalidInput({
          field: 'after',
          message: `after: the token asks for sequence ${w.need.seq} of shard ${this.address.id}, but its directory holds sequence ${record.seq}: the token is not from this root, or its write was lost`,
        }),
      )
    }
    this.#refreshForWaiters()
  }

  withdrawReader(readerId: string, lease: string): void {
    if (this.readers.get(readerId)?.lease === lease) this.readers.delete(readerId)
    this.refreshing.delete(readerId)
    if (this.exhausted && this.readers.size === 0) return this.#rejectWaiters(() => this.#unavailable())
    // The reader may have been refreshing for reads that still wait: another one takes over.
    this.#refreshForWaiters()
  }

  /**
   * The primary is exhausted: queued writes fail with ShardUnavailable; queued reads wait for a reader to refresh
   * while the shard has readers, and fail too when it has none.
   */
  primaryExhausted(): void {
    this.exhausted = true
    if (this.readers.size === 0) return this.#rejectWaiters(() => this.#unavailable())
    const writes = this.#waiters.filter((w) => w.kind === 'write' || w.need.primary)
    this.#waiters = this.#waiters.filter((w) => !writes.includes(w))
    for (const w of writes) w.reject(this.#unavailable())
    this.#refreshForWaiters()
  }

  /** The readers are exhausted (`degraded`) or back (`recovered`). In reader mode, nothing is left to serve reads. */
  poolDegraded(degraded: boolean): void {
    this.degraded = degraded
    if (degraded && this.mode === 'reader') this.#rejectWaiters(() => this.#unavailable())
  }

  /**
   * The primary could not open because another instance holds the directory's lock (another process, or another
   * writer-mode index of this process). That will not pass by retrying soon: requests waiting for the primary fail
   * with this error now, and so do new ones until an open succeeds, while the supervisor keeps retrying under its
   * backoff.
   */
  primaryLocked(error: StorageFailure): void {
    this.locked = error
    const stuck = this.#waiters.filter((w) => w.kind === 'write' || !this.#readerCouldServe(w.need))
    this.#waiters = this.#waiters.filter((w) => !stuck.includes(w))
    for (const w of stuck) w.reject(error)
  }

  /** The supervisor restarts an exhausted primary: requests queue for it again. */
  primaryRecovering(): void {
    this.exhausted = false
  }

  /** The index is closing: stop accepting, fail what is queued. */
  stop(): void {
    this.closed = true
    this.#rejectWaiters(() => new Closed({ message: `shard ${this.address.id} is closed` }))
  }

  /** Resolves when no request runs or waits on this shard. */
  idle(): Promise<void> {
    if (this.inflight === 0) return Promise.resolve()
    return new Promise((resolve) => (this.#idle = resolve))
  }

  // ---- the request paths ----

  /**
   * Runs `fn` on the primary as the next write of this shard (writes to a shard are serialized). `nextSeq` hands out
   * sequences for the batches `fn` writes; `records` is how many keys it writes (for the flush trigger). A storage
   * failure is reported to the primary's supervisor and the write retried once on the restarted primary (injected
   * and RocksDB write failures are never partially applied).
   */
  write<T>(fn: (handle: StorageHandle, nextSeq: () => number) => Promise<T>, records: number | ((result: T) => number) = 0): Promise<T> {
    this.#assertOpen()
    if (this.pendingWrites >= this.limits.maxPendingWrites) {
      return Promise.reject(new Overloaded({ shard: this.address.id, message: `shard ${this.address.id}: ${this.pendingWrites} writes already pending` }))
    }
    this.pendingWrites++
    this.inflight++
    const run = this.#writeChain.then(async () => {
      for (let attempt = 0; ; attempt++) {
        const record = await this.#primaryFor('write', { seq: 0, primary: true })
        record.inflight++
        try {
          const result = await fn(record.handle, () => ++this.seq)
          this.ackSeq = this.seq
          const written = typeof records === 'number' ? records : records(result)
          if (this.unflushed === 0 && written > 0) this.firstUnflushedAt = this.clock.now()
          this.unflushed += written
          if (this.unflushed >= this.limits.flushEveryRecords) await this.#flush(record)
          return result
        } catch (e) {
          if (!(e instanceof StorageFailure) || attempt >= 1 || this.closed) throw e
          this.fault(record, e)
        } finally {
          this.table.finished(record)
        }
      }
    })
    this.#writeChain = run.catch(() => undefined)
    return run.finally(() => {
      this.pendingWrites--
      this.#done()
    })
  }

  /**
   * Flushes the primary's memtable if a record written at `olderThan` or before is still unflushed (the time
   * trigger, run by pool maintenance): queued behind the writes, so it never runs beside one.
   */
  flushIfOlder(olderThan: number): void {
    if (this.unflushed === 0 || this.firstUnflushedAt > olderThan || this.primary === undefined || this.closed) return
    // The handle is taken when the flush runs, not while it queues: a queued flush must not pin a primary that
    // failed meanwhile (its release waits for the requests on it, and the writes ahead wait for its successor).
    this.#writeChain = this.#writeChain.then(async () => {
      const record = this.primary
      if (record === undefined || record.faulted || this.unflushed === 0) return
      record.inflight++
      try {
        await this.#flush(record)
      } finally {
        this.table.finished(record)
      }
    })
  }

  /** Writes the memtable to a table file, so that a reader's open replays a short WAL. A failure is a fault. */
  async #flush(record: LeaseRecord): Promise<void> {
    try {
      await record.handle.flush()
      this.unflushed = 0
    } catch (e) {
      if (e instanceof StorageFailure) this.fault(record, e)
    }
  }

  /**
   * Runs `fn` on a handle that satisfies `need`: the least-loaded such reader, else (writer mode) the primary, else
   * (reader mode) the first reader a refresh makes fresh enough. A storage failure is reported once to the failing
   * handle's actor and `fn` retried once elsewhere.
   */
  async read<T>(fn: (handle: StorageHandle) => Promise<T>, need: Need): Promise<T> {
    this.#assertOpen()
    this.inflight++
    try {
      for (let attempt = 0; ; attempt++) {
        const record = this.#freshReader(need) ?? (await this.#primaryFor('read', need))
        record.inflight++
        try {
          return await fn(record.handle)
        } catch (e) {
          if (!(e instanceof StorageFailure) || attempt >= 1 || this.closed) throw e
          this.fault(record, e)
        } finally {
          record.lastUsedAt = this.clock.now()
          this.table.finished(record)
        }
      }
    } finally {
      this.#done()
    }
  }

  /**
   * Streams `fn`'s entries from a handle that satisfies `need` (as {@link read}), holding the handle until the stream
   * ends or the consumer stops. A failure before the first entry is retried once elsewhere; later failures are thrown.
   */
  async *stream<T>(fn: (handle: StorageHandle) => AsyncIterable<T>, need: Need): AsyncGenerator<T> {
    this.#assertOpen()
    this.inflight++
    try {
      for (let attempt = 0; ; attempt++) {
        const record = this.#freshReader(need) ?? (await this.#primaryFor('read', need))
        record.inflight++
        let yielded = false
        try {
          for await (const item of fn(record.handle)) {
            yielded = true
            yield item
          }
          return
        } catch (e) {
          if (!(e instanceof StorageFailure) || yielded || attempt >= 1 || this.closed) throw e
          this.fault(record, e)
        } finally {
          record.lastUsedAt = this.clock.now()
          this.table.finished(record)
        }
      }
    } finally {
      this.#done()
    }
  }

  /** Reports a failure of `record` to its actor, once per handle, and stops routing requests to it. */
  fault(record: LeaseRecord, error: StorageFailure): void {
    if (record.faulted) return
    record.faulted = true
    if (record.role === 'primary') {
      this.withdrawPrimary(record.lease)
      this.send({ type: 'FAULT', actor: 'primary', error, lease: record.lease })
    } else if (record.readerId !== undefined) {
      this.withdrawReader(record.readerId, record.lease)
      this.send({ type: 'FAULT', actor: record.readerId, error, lease: record.lease })
    }
  }

  /** The least-loaded serving reader that satisfies `need`; asks for a refresh or more readers as needed. */
  #freshReader(need: Need): LeaseRecord | undefined {
    if (need.primary) return undefined
    let best: LeaseRecord | undefined
    let stale: LeaseRecord | undefined
    let load = 0
    for (const [readerId, r] of this.readers) {
      load += r.inflight
      if (r.faulted) continue
      if (satisfies(r, need)) {
        if (best === undefined || r.inflight < best.inflight) best = r
      } else if (!this.refreshing.has(readerId) && (stale === undefined || r.seq < stale.seq || (r.seq === stale.seq && r.openedAt < stale.openedAt))) {
        stale = r
      }
    }
    if (stale !== undefined && this.refreshing.size < this.limits.refreshesPerShard) {
      this.refreshing.add(stale.readerId!)
      this.send({ type: 'REFRESH', readerId: stale.readerId! })
    }
    if (!this.#scaleRequested && load / Math.max(1, this.readers.size) >= this.limits.growAt) {
      this.#scaleRequested = true
      this.send({ type: 'SCALE_UP' })
    }
    return best
  }

  /** Asks for a refresh on behalf of the reads still waiting (the most demanding first). */
  #refreshForWaiters(): void {
    const reads = this.#waiters.filter((w) => w.kind === 'read' && !w.need.primary)
    if (reads.length === 0) return
    const seq = Math.max(...reads.map((w) => w.need.seq))
    const sinces = reads.map((w) => w.need.since).filter((t): t is number => t !== undefined)
    this.#freshReader({ seq, ...(sinces.length > 0 ? { since: Math.max(...sinces) } : {}) })
  }

  /** Whether a reader of this shard may still come to serve `need` (there are readers, and they are not exhausted). */
  #readerCouldServe(need: Need): boolean {
    return !need.primary && this.readers.size > 0 && !this.degraded
  }

  /**
   * For a write or a primary-only read: the primary's record, or a wait (bounded) for it. For another read that no
   * reader satisfies now: in writer mode the primary (or a wait for it or for a fresh reader, whichever comes first);
   * in reader mode a wait for a refreshed reader. Work already accepted still drains while the index closes.
   */
  #primaryFor(kind: 'read' | 'write', need: Need): Promise<LeaseRecord> | LeaseRecord {
    if (this.mode === 'writer' && this.primary !== undefined && !this.primary.faulted) return this.primary
    this.#assertOpen()
    if (this.mode === 'reader') {
      if (this.degraded) throw this.#unavailable()
    } else if (this.exhausted && (kind === 'write' || !this.#readerCouldServe(need))) throw this.#unavailable()
    else if (this.locked !== undefined && (kind === 'write' || !this.#readerCouldServe(need))) throw this.locked
    const queued = this.#waiters.filter((w) => w.kind === kind).length
    if (kind === 'read' && queued >= this.limits.maxPendingReads) {
      throw new Overloaded({ shard: this.address.id, message: `shard ${this.address.id}: ${queued} reads already wait for a handle` })
    }
    return new Promise((resolve, reject) => this.#waiters.push({ kind, need, ticket: this.table.ticket(), resolve, reject }))
  }

  #unavailable(): ShardUnavailable {
    return new ShardUnavailable({
      shard: this.address.id,
      message:
        this.mode === 'reader'
          ? `shard ${this.address.id} is unavailable: its readers exhausted their restart intensity (recover it with index.recover)`
          : `shard ${this.address.id} is unavailable: its primary exhausted its restart intensity (recover it with index.recover)`,
    })
  }

  #rejectWaiters(error: () => unknown): void {
    const waiters = this.#waiters
    this.#waiters = []
    for (const w of waiters) w.reject(error())
  }

  #assertOpen(): void {
    if (this.closed) throw new Closed({ message: `shard ${this.address.id} is closed` })
  }

  #done(): void {
    this.inflight--
    if (this.inflight === 0) this.#idle?.()
  }
}
