/**
 * The data plane of one shard: which handles are ready (published by the machines' actions), the bounded queues,
 * and the request paths. A request never waits for an XState event: it finds a handle by a plain function call.
 * The shard talks back to its supervisor only on lifecycle matters: a fault (once per handle), a refresh, a scale-up.
 *
 * Freshness (read-your-writes): every write batch stores the shard's next sequence; a handle's `seq` is the sequence
 * its view reflects. A read issued after writes acknowledged up to `ackSeq` is served by a reader whose `seq` is at
 * least that, else by the primary while the stalest reader refreshes (one refresh at a time per shard).
 */
import type { ShardCommand } from '../actors/shard-supervisor.js'
import type { Clock } from './clock.js'
import { Closed, Overloaded, ShardUnavailable, StorageFailure } from './errors.js'
import type { StorageHandle } from './engine.js'
import type { ShardAddress } from './layout.js'
import type { HandleTable, LeaseRecord } from './resources.js'

/** The limits a shard's data plane enforces. */
export interface ShardLimits {
  readonly maxPendingWrites: number
  readonly maxPendingReads: number
  readonly growAt: number
  readonly refreshesPerShard: number
}

interface Waiter {
  readonly kind: 'read' | 'write'
  /** For reads: the sequence a reader's view must reach to serve it. */
  readonly need: number
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
  ) {}

  // ---- called by the machines' provided actions ----

  /** The primary's handle is ready. Writes continue from the sequence stored on disk. */
  publishPrimary(record: LeaseRecord): void {
    this.primary = record
    this.exhausted = false
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
    // Reads waiting (the primary is down) for a view this fresh go now; the others ask for another refresh.
    const ready = this.#waiters.filter((w) => w.kind === 'read' && w.need <= record.seq)
    if (ready.length === 0) return
    this.#waiters = this.#waiters.filter((w) => !ready.includes(w))
    for (const w of ready) w.resolve(record)
    const needs = this.#waiters.filter((w) => w.kind === 'read').map((w) => w.need)
    if (needs.length > 0) this.#freshReader(Math.max(...needs))
  }

  withdrawReader(readerId: string, lease: string): void {
    if (this.readers.get(readerId)?.lease === lease) this.readers.delete(readerId)
    this.refreshing.delete(readerId)
    if (this.exhausted && this.readers.size === 0) this.#rejectWaiters(() => this.#unavailable())
  }

  /**
   * The primary is exhausted: queued writes fail with ShardUnavailable; queued reads wait for a reader to refresh
   * while the shard has readers, and fail too when it has none.
   */
  primaryExhausted(): void {
    this.exhausted = true
    if (this.readers.size === 0) return this.#rejectWaiters(() => this.#unavailable())
    const writes = this.#waiters.filter((w) => w.kind === 'write')
    this.#waiters = this.#waiters.filter((w) => w.kind === 'read')
    for (const w of writes) w.reject(this.#unavailable())
    const needs = this.#waiters.map((w) => w.need)
    if (needs.length > 0) this.#freshReader(Math.max(...needs))
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
   * sequences for the batches `fn` writes. A storage failure is reported to the primary's supervisor and the write
   * retried once on the restarted primary (injected and RocksDB write failures are never partially applied).
   */
  write<T>(fn: (handle: StorageHandle, nextSeq: () => number) => Promise<T>): Promise<T> {
    this.#assertOpen()
    if (this.pendingWrites >= this.limits.maxPendingWrites) {
      return Promise.reject(new Overloaded({ shard: this.address.id, message: `shard ${this.address.id}: ${this.pendingWrites} writes already pending` }))
    }
    this.pendingWrites++
    this.inflight++
    const run = this.#writeChain.then(async () => {
      for (let attempt = 0; ; attempt++) {
        const record = await this.#primaryFor('write', 0)
        record.inflight++
        try {
          const result = await fn(record.handle, () => ++this.seq)
          this.ackSeq = this.seq
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
   * Runs `fn` on a handle whose view reflects every write acknowledged before this call: the least-loaded fresh
   * reader, else the primary. A storage failure is reported once to the failing handle's actor and `fn` retried once
   * elsewhere.
   */
  async read<T>(fn: (handle: StorageHandle) => Promise<T>): Promise<T> {
    this.#assertOpen()
    const need = this.ackSeq
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
   * Streams `fn`'s entries from a fresh handle (as {@link read}), holding the handle until the stream ends or the
   * consumer stops. A failure before the first entry is retried once elsewhere; later failures are thrown.
   */
  async *stream<T>(fn: (handle: StorageHandle) => AsyncIterable<T>): AsyncGenerator<T> {
    this.#assertOpen()
    const need = this.ackSeq
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
      this.send({ type: 'FAULT', actor: 'primary', error })
    } else if (record.readerId !== undefined) {
      this.withdrawReader(record.readerId, record.lease)
      this.send({ type: 'FAULT', actor: record.readerId, error })
    }
  }

  /** The least-loaded serving reader whose view is at least `need`; asks for a refresh or more readers as needed. */
  #freshReader(need: number): LeaseRecord | undefined {
    let best: LeaseRecord | undefined
    let stale: LeaseRecord | undefined
    let load = 0
    for (const [readerId, r] of this.readers) {
      load += r.inflight
      if (r.faulted) continue
      if (r.seq >= need) {
        if (best === undefined || r.inflight < best.inflight) best = r
      } else if (!this.refreshing.has(readerId) && (stale === undefined || r.seq < stale.seq)) stale = r
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

  /**
   * The primary's record, or a wait (bounded) for it or, for a read, for a reader whose view reaches `need`.
   * Work already accepted still drains while the index closes.
   */
  #primaryFor(kind: 'read' | 'write', need: number): Promise<LeaseRecord> | LeaseRecord {
    if (this.primary !== undefined && !this.primary.faulted) return this.primary
    this.#assertOpen()
    if (this.exhausted && (kind === 'write' || this.readers.size === 0)) throw this.#unavailable()
    const queued = this.#waiters.filter((w) => w.kind === kind).length
    if (kind === 'read' && queued >= this.limits.maxPendingReads) {
      throw new Overloaded({ shard: this.address.id, message: `shard ${this.address.id}: ${queued} reads already wait for the primary` })
    }
    return new Promise((resolve, reject) => this.#waiters.push({ kind, need, resolve, reject }))
  }

  #unavailable(): ShardUnavailable {
    return new ShardUnavailable({
      shard: this.address.id,
      message: `shard ${this.address.id} is unavailable: its primary exhausted its restart intensity (recover it with index.recover)`,
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
