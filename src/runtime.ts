/**
 * The runtime: builds the actor tree (root supervisor -> shard supervisors -> primary + readers), provides the
 * machines' named I/O with live implementations over the handle table, runs pool maintenance on the injected clock,
 * publishes lifecycle events, and closes everything in order. The public `Index` (src/index.ts) sits on top.
 */
import { createActor, fromPromise, type Actor, type AnyActorRef, type InspectionEvent } from 'xstate'
import type { LifecycleEvent } from '../actors/events.js'
import { primaryMachine } from '../actors/primary.js'
import { readerMachine } from '../actors/reader.js'
import { rootSupervisorMachine } from '../actors/root-supervisor.js'
import { shardSupervisorMachine, type ShardCommand } from '../actors/shard-supervisor.js'
import { Closed, StorageFailure, causeOf, describeError } from './errors.js'
import { FaultInjector, type FaultOp, type FaultTarget } from './faults.js'
import { ensureTopicDir, prepareShardDir, shardAddress, type ShardAddress } from './layout.js'
import { identityValue, readIdentity } from './keys.js'
import { placingReaders, type OpenOptions } from './engine.js'
import type { ResolvedOptions } from './options.js'
import { ReaderWorkers } from './reader-workers.js'
import { HandleTable, openLimiter, type LeaseRecord } from './resources.js'
import { ShardRuntime, type IntegrityCounts, type ServedCounts } from './shard.js'
import { lowerCompactionThreads } from './threads.js'
import { readViewState, viewCheck } from './views.js'

/**
 * How many times in a row one reader open is tried again at once, for a torn view (discarded) or a file of the
 * directory deleted by the primary while the open read it, before it fails (transiently: the reader restarts, or
 * keeps its old view if it was refreshing).
 */
const tornViewsPerOpen = 8

/** Per-shard statistics. */
export interface ShardStats {
  readonly id: string
  readonly topic: string
  readonly shard: number
  /** `running`, `starting` (first open), `restarting` (primary backing off / reopening), `failed`, `closing`, `closed`. */
  readonly state: 'starting' | 'running' | 'restarting' | 'failed' | 'closing' | 'closed'
  /** `degraded`: readers exhausted their restart intensity; reads go to the primary. */
  readonly pool: 'healthy' | 'degraded'
  /** The primary actor's state (`waiting`, `opening`, `ready`, `failed`, `closing`, ...) or `none`. */
  readonly primary: string
  /** Reader actors by state (`waiting`, `opening`, `serving`, `refreshing`, `retiring`, ...). */
  readonly readers: Readonly<Record<string, number>>
  readonly restarts: { readonly primary: number; readonly readers: number }
  /** Writes queued or running, reads running or waiting (bounded by `queues.maxInflightReads`), all requests. */
  readonly queues: { readonly pendingWrites: number; readonly pendingReads: number; readonly inflight: number }
  /** Sequence of the last write acknowledged on this shard (by this index). */
  readonly sequence: number
  /**
   * The primary's memtable flushes: how many ended since the index opened, whether one runs now (beside the writes),
   * and how many writes wait for it (their batches and its memtable would hold more than twice a flush trigger).
   */
  readonly flushes: { readonly done: number; readonly running: boolean; readonly writesWaiting: number }
  /**
   * The msgId filters that spare writes their lookups (see src/msgids.ts), since the primary opened: partitions
   * that have one, how many of them are still learning their by-id view (their writes look up every msgId), the
   * bytes of their tables (at most `writes.msgIdFilterBytes`), and the partitions that go without one because it
   * did not fit (their writes look up every msgId).
   */
  readonly msgIdFilters: { readonly partitions: number; readonly learning: number; readonly bytes: number; readonly refused: number }
  /** Each serving reader's view: the shard sequence it reflects and how old it is (ms, by the index's clock). */
  readonly views: readonly { readonly reader: string; readonly sequence: number; readonly ageMs: number }[]
  /**
   * What the shard caught: torn reader views discarded before serving, reads that met a corrupted block (each failed
   * alone), refreshes that failed (the old view kept serving).
   */
  readonly integrity: Readonly<IntegrityCounts>
  /**
   * Which handles answered this shard's reads: the primary, a reader from its view, or (point reads in writer mode) a
   * reader from the memory of writes newer than its view (`freshness.recentWritesBytes`).
   */
  readonly served: Readonly<ServedCounts>
  /** Why the shard gave up (state `failed`, or a degraded reader-mode pool), until it recovers. */
  readonly cause?: { readonly reason: string; readonly path: string; readonly message: string }
}

/** Statistics of a whole index. `primaries`/`readers` count ready handles, like the seed's get_stats. */
export interface IndexStats {
  readonly shards: readonly ShardStats[]
  readonly totals: { readonly primaries: number; readonly readers: number; readonly handles: number }
}

/** A crash to inject on a live shard: its primary, a given reader, or every reader. */
export type CrashTarget = 'primary' | 'readers' | `reader-${number}`

export class Runtime {
  readonly table = new HandleTable()
  readonly shards = new Map<string, ShardRuntime>()
  readonly faults: FaultInjector
  /**
   * The worker threads or child processes where readers' handles live (`readers.placement: 'worker'` or
   * `'process'`), undefined in process.
   */
  readonly readerWorkers: ReaderWorkers | undefined
  readonly root: Actor<typeof rootSupervisorMachine>
  readonly #listeners = new Set<(e: LifecycleEvent) => void>()
  readonly #opts: ResolvedOptions
  readonly #limit: <A>(open: () => Promise<A>) => Promise<A>
  #timer: unknown
  /** A primary opened with `rocksdb.compactionCpuPriority: 'low'`: maintenance lowers the compaction threads too. */
  #lowersCompactions = false
  #closing: Promise<void> | undefined
  /** Opens still checking their directories (see #openLease). */
  readonly #preparing = new Set<Promise<void>>()

  constructor(
    opts: ResolvedOptions,
    readonly shardCount: number,
    inspect?: (e: InspectionEvent) => void,
  ) {
    this.#opts = opts
    this.#limit = openLimiter(opts.maxConcurrentOpens)
    this.faults = opts.engine instanceof FaultInjector ? opts.engine : new FaultInjector(opts.engine)
    const { where, threads } = opts.readerPlacement
    this.readerWorkers = where === 'in-process' ? undefined : new ReaderWorkers(opts.root, threads, where)
    const machine = rootSupervisorMachine.provide({
      actors: {
        shard: shardSupervisorMachine.provide({
          actors: { primary: this.#primary(), reader: this.#reader() },
          actions: {
            notify: (_, event) => {
              const shard = this.shards.get(event.shard)
              // The primary left `failed`: requests may queue for it again.
              if (event.type === 'recovered' && event.actor === 'primary') shard?.primaryRecovering()
              if (event.type === 'recovered' && event.actor === 'shard') shard?.poolDegraded(false)
              this.#emit(event)
            },
            primaryExhausted: (_, { shardId, error }) => {
              const shard = this.shards.get(shardId)
              shard?.primaryExhausted(causeOf(error, shard.address.dir))
            },
            readersExhausted: (_, { shardId, error }) => {
              const shard = this.shards.get(shardId)
              shard?.poolDegraded(true, causeOf(error, shard.address.dir))
            },
          },
        }),
      },
    })
    this.root = createActor(machine, { clock: opts.clock, ...(inspect ? { inspect: this.#guardedInspect(inspect) } : {}) })
    this.root.start()
    this.#schedule()
  }

  /** The data plane of (topic, shard), creating its supervisor on first use (exactly once: see root-supervisor). */
  shard(topic: string, shard: number): ShardRuntime {
    const address = shardAddress(this.#opts.root, topic, shard)
    const existing = this.shards.get(address.id)
    if (existing !== undefined) return existing
    // Once the index closes, no shard is made: its supervisor would open handles nobody closes, and a request waiting
    // on it would wait for a primary or a view that never comes (a read routed just before close() began, say).
    if (this.#closing !== undefined) throw new Closed({ message: `the index at ${this.#opts.root} is closed` })
    const runtime = new ShardRuntime(
      address,
      this.table,
      {
        ...this.#opts.queues,
        growAt: this.#opts.pool.growAt,
        refreshesPerShard: this.#opts.pool.refreshesPerShard,
        flushEveryRecords: this.#opts.freshness.flushEveryRecords,
        flushEveryBytes: Math.floor(this.#opts.rocksdb.primary.writeBufferSize / 4),
        recentWritesBytes: this.#opts.freshness.recentWritesBytes,
        followLogs: this.#opts.freshness.followLogs,
        msgIdFilterBytes: this.#opts.writes.msgIdFilterBytes,
      },
      this.#opts.clock,
      (command) => this.#send(address.id, command),
      this.#opts.mode,
    )
    runtime.report = (event) => this.#emit(event)
    this.shards.set(address.id, runtime)
    this.root.send({
      type: 'ENSURE',
      shard: {
        shardId: address.id,
        mode: this.#opts.mode,
        policy: this.#opts.policy,
        env: { now: () => this.#opts.clock.now(), random: this.#random },
      },
    })
    return runtime
  }

  /** The shard supervisor actor of a shard id, if it exists. */
  supervisor(shardId: string): AnyActorRef | undefined {
    return (this.root.getSnapshot().children as Record<string, AnyActorRef | undefined>)[shardId]
  }

  /** Subscribes to lifecycle events; returns the unsubscribe function. */
  subscribe(listener: (e: LifecycleEvent) => void): () => void {
    this.#listeners.add(listener)
    return () => this.#listeners.delete(listener)
  }

  /** Asks a shard (or every shard) to restart what exhausted its restart intensity. */
  recover(shardId?: string): void {
    for (const id of shardId === undefined ? this.shards.keys() : [shardId]) this.#send(id, { type: 'RECOVER' })
  }

  /** Injects a crash: breaks the target's handle(s) (later calls on them fail) and reports the fault to the actor. */
  crash(shardId: string, target: CrashTarget): number {
    const shard = this.shards.get(shardId)
    if (shard === undefined) return 0
    const records: LeaseRecord[] =
      target === 'primary'
        ? shard.primary ? [shard.primary] : []
        : target === 'readers'
          ? [...shard.readers.values()]
          : [...shard.readers.values()].filter((r) => r.readerId === target)
    for (const record of records) {
      this.faults.breakHandle(record.handle)
      shard.fault(record, new StorageFailure({ reason: 'injected', path: record.handle.path, message: `injected crash of ${record.readerId ?? 'primary'} in ${shardId}` }))
    }
    return records.length
  }

  /** Arms an injected failure of the next n opens/reads/writes (see FaultInjector.failNext). */
  failNext(op: FaultOp, n: number, target: FaultTarget): void {
    this.faults.failNext(op, n, target)
  }

  /** Sends a command to a shard's supervisor; dropped if it no longer exists. */
  #send(shardId: string, command: ShardCommand): void {
    this.supervisor(shardId)?.send(command)
  }

  #emit(event: LifecycleEvent): void {
    for (const listener of this.#listeners) {
      try {
        const result: unknown = listener(event)
        // An async listener's rejection would otherwise be an unhandled rejection, which ends the process.
        if (typeof (result as PromiseLike<unknown> | undefined)?.then === 'function') {
          Promise.resolve(result).catch((e: unknown) => this.#listenerFailed(listener, event, e))
        }
      } catch (e) {
        // A listener's failure must not reach the supervisor that announced the event.
        this.#listenerFailed(listener, event, e)
      }
    }
  }

  /**
   * The user's `inspect`, called from inside XState: should it throw, the error would surface in the actor that was
   * transitioning and stop the supervision tree. Its errors are reported once (console.warn) and go no further.
   */
  #guardedInspect(inspect: (e: InspectionEvent) => void): (e: InspectionEvent) => void {
    let reported = false
    return (e) => {
      try {
        inspect(e)
      } catch (error) {
        if (reported) return
        reported = true
        this.#warn(`the inspect option of ${this.#opts.root} threw on an inspection event (${e.type}): ${describeError(error)}. The actors go on; later errors of inspect are not reported.`)
      }
    }
  }

  #randomReported = false

  /**
   * The jitter source the supervisors use: the user's `random`, or `Math.random` for a draw that throws or falls
   * outside [0, 1) (reported once): a supervisor computing a backoff must not fail, nor wait a NaN delay.
   */
  readonly #random = (): number => {
    let r: unknown
    let what: () => string
    try {
      r = this.#opts.random()
      what = () => `returned ${typeof r === 'number' ? String(r) : typeof r}`
    } catch (error) {
      what = () => `threw ${describeError(error)}`
    }
    if (typeof r === 'number' && r >= 0 && r < 1) return r
    if (!this.#randomReported) {
      this.#randomReported = true
      this.#warn(`the random option of ${this.#opts.root} ${what()}, not a number in [0, 1): Math.random is used for that draw (and for any later bad draw; not reported again).`)
    }
    return Math.random()
  }

  /** A warning of this index (console.warn, prefixed). Never throws. */
  #warn(message: string): void {
    try {
      console.warn(`rockvisor: ${message}`)
    } catch {
      // nothing more to do
    }
  }

  /** Listeners reported for throwing already: each is reported once, however often it throws. */
  readonly #reported = new WeakSet<object>()

  /** Reports a listener that threw (or rejected) on `event`: once per listener, with console.warn. Never throws. */
  #listenerFailed(listener: (e: LifecycleEvent) => void, event: LifecycleEvent, error: unknown): void {
    if (this.#reported.has(listener)) return
    this.#reported.add(listener)
    try {
      const what = describeError(error)
      console.warn(
        `rockvisor: a lifecycle listener of ${this.#opts.root} threw on the '${event.type}' event of ${event.shard} (${event.actor}): ${what}. The event reached the other listeners; later errors of this listener are not reported.`,
        error,
      )
    } catch {
      // Nothing left to report to (a broken console, an error that cannot be printed).
    }
  }

  #address(shardId: string): ShardAddress {
    const shard = this.shards.get(shardId)
    if (shard === undefined) throw new Error(`unknown shard ${shardId}`)
    return shard.address
  }

  /** Opens a handle into the table and reads the sequence its view reflects; releases it if anything fails. */
  async #openLease(role: 'primary' | 'reader', shardId: string, readerId: string | undefined, signal: AbortSignal, attempt = 0): Promise<string> {
    const address = this.#address(shardId)
    const limit = this.#limit
    // The directories are checked before RocksDB sees them: a database is created only in a directory that holds
    // none, and a damaged one (RocksDB files without CURRENT) or another topic's is refused, never repaired.
    let state: 'new' | 'existing' | 'absent'
    /** The topic records its shard count, and it is this root's: the count an identity written now may name. */
    let counted: boolean
    const abandoned = (): void => {
      if (signal.aborted) throw new Error('open abandoned: its actor stopped')
    }
    // Tracked until RocksDB is asked to open: a close waits for these checks (they may create the topic's and the
    // shard's directories), and each stops at its next step once the actor stopped, so nothing is created after.
    let prepared = (): void => {}
    const preparing = new Promise<void>((resolve) => (prepared = resolve))
    this.#preparing.add(preparing)
    try {
      abandoned()
      counted = await ensureTopicDir(this.#opts.root, address.topic, { create: role === 'primary', shards: this.shardCount })
      abandoned()
      state = await prepareShardDir(address.dir, role === 'primary' ? 'writer' : 'reader')
    } catch (e) {
      throw e instanceof StorageFailure && (e.reason === 'corruption' || e.reason === 'permission') ? fatal(e, shardId) : e
    } finally {
      prepared()
      this.#preparing.delete(preparing)
    }
    if (state === 'absent') {
      throw new StorageFailure({ reason: 'missing', path: address.dir, shard: shardId, message: `no database in ${address.dir} yet: its writer has not created it` })
    }
    // The actor may have stopped meanwhile (the index closing): then nothing may be opened for it any more.
    if (signal.aborted) throw new Error('open abandoned: its actor stopped')
    const settings = role === 'primary' ? this.#opts.rocksdb.primary : this.#opts.rocksdb.reader
    const createIfMissing = state === 'new'
    // With placement 'worker' or 'process', a reader's RocksDB instance opens in a worker thread or child process,
    // under the same engines (fault injection, a test's wrapper); if it dies, the reader is faulted at once (as
    // `crash` does), before its failed reads are retried.
    let placed: LeaseRecord | undefined
    const workers = role === 'reader' ? this.readerWorkers : undefined
    const via = workers && { open: (path: string, o: OpenOptions) => workers.open(path, o, (failure) => placed && this.shards.get(shardId)?.fault(placed, failure)) }
    const record = await this.table
      .acquire(
        () =>
          limit(() => {
            // An open that waited for its turn (maxConcurrentOpens) while the actor stopped must not reach RocksDB: a
            // close that stopped waiting for it would otherwise see a database created (and locked) after it ended.
            abandoned()
            return placingReaders(via, () => this.faults.open(address.dir, { readOnly: role === 'reader', createIfMissing, ...settings }))
          }),
        { role, shardId, ...(readerId === undefined ? {} : { readerId }), now: this.#opts.clock.now() },
        signal,
      )
      .catch((e: unknown) => {
        // Another instance holds the directory: requests waiting for this primary fail now with that error.
        if (role === 'primary' && e instanceof StorageFailure && e.reason === 'locked') this.shards.get(shardId)?.primaryLocked(e)
        // Failures that reopening will not cure fail the shard at once, with their cause: a permission problem, a
        // lock held by another instance (recover the shard once it is gone), corruption met by the primary's open
        // (exclusive: the damage is in the files; a reader's open may meet a MANIFEST that a live primary is
        // rewriting, which passes, so that stays transient).
        if (e instanceof StorageFailure && (e.reason === 'permission' || e.reason === 'locked' || (role === 'primary' && e.reason === 'corruption'))) {
          throw fatal(e, shardId)
        }
        // The primary's open of a directory with a CURRENT file (checked above) that meets a missing file: CURRENT
        // names a MANIFEST that is gone, or the MANIFEST a table file that is gone. Only this primary writes the
        // directory, so nothing else deletes its files: the directory is damaged, and reopening will not cure it.
        if (role === 'primary' && state === 'existing' && e instanceof StorageFailure && e.reason === 'missing') {
          throw fatal(damaged(e, address.dir), shardId)
        }
        // A reader's open of a directory that holds a database (checked above) that meets a missing file raced the
        // primary's deletion of a file it had listed (a WAL or table file after a flush or a compaction, the old
        // MANIFEST after CURRENT moved on): the next open lists the files anew. Tried again at once, like a torn
        // view. A file missing on every one of those opens is no race: the directory is damaged, and restarting the
        // reader under backoff would only make its requests wait for nothing. So is a CURRENT without its newline
        // (RocksDB replaces CURRENT by a rename: no reader ever sees it half written), known by RocksDB's own words for
        // it, not by a path that names a CURRENT file (RocksDB's message names the file). Other corruption met by a
        // reader's open may be a MANIFEST a live primary is rewriting: the reader is restarted under backoff.
        if (role === 'reader' && e instanceof StorageFailure && !signal.aborted) {
          const current = e.reason === 'corruption' && /CURRENT file (does not end with newline|corrupted)/.test(e.message)
          if (e.reason === 'missing' || current) {
            if (attempt + 1 < tornViewsPerOpen) return undefined
            throw fatal(current ? e : damaged(e, address.dir), shardId)
          }
        }
        throw e
      })
    if (record === undefined) return this.#openLease(role, shardId, readerId, signal, attempt + 1)
    placed = record
    // A primary's open may have added threads to RocksDB's compaction pools: they run at the lowest priority (and
    // from now on, at each maintenance: threads named after this call, or added by other opens).
    if (role === 'primary' && this.#opts.rocksdb.compactionCpuPriority === 'low') {
      this.#lowersCompactions = true
      lowerCompactionThreads()
    }
    let whole: boolean
    try {
      const view = await readViewState(record.handle)
      record.seq = view.seq
      record.epoch = view.epoch
      const torn = role === 'reader' && view.missing.length > 0
      whole = !torn || !viewCheck.enabled
      if (torn) {
        const what = `view of sequence ${view.seq} misses flush epoch(s) ${view.missing.slice(0, 8).join(', ')} (a flush raced the open)`
        // (With the check off, a test-only switch, the torn view is still counted, and served.)
        this.shards.get(shardId)?.tornView(readerId ?? 'reader', whole ? `${what}: served, the view check is off` : `${what}: discarded, reopening`)
      }
      // The shard's identity: a view of another shard's database (directories swapped, moved or restored to the
      // wrong place, or a manifest whose shard count changed) would answer for the wrong partitions. (A torn view
      // may lack the entry, never hold another.) A primary that finds none adds it with its next write batch, only
      // when the topic's own record confirms the count: a topic created before that record existed may be opened
      // under a manifest edited since, whose count must not become the shard's.
      const identity = identityValue(address.id, this.shardCount)
      if (view.identity !== undefined && !identity.equals(view.identity)) throw misplaced(address, shardId, view.identity, identity)
      if (view.identity === undefined && role === 'primary' && counted) record.identityPending = identity
      if (signal.aborted) throw new Error('open abandoned: its actor stopped')
    } catch (e) {
      await this.table.release(record.lease, { force: true })
      // The open met damage reading its view's state (its sequence and epochs, the first keys any open reads, in table
      // files that never change once written): the files are damaged, and reopening will not cure them.
      throw e instanceof StorageFailure && e.reason === 'corruption' ? fatal(e, shardId) : e
    }
    if (!whole) {
      // A torn view is never served: it is closed and the open tried again (a few times, then the open fails).
      await this.table.release(record.lease, { force: true })
      if (attempt + 1 >= tornViewsPerOpen) {
        throw new StorageFailure({ reason: 'io', path: address.dir, shard: shardId, message: `${tornViewsPerOpen} torn views in a row opening ${address.dir}: the primary flushes faster than a view can open` })
      }
      return this.#openLease(role, shardId, readerId, signal, attempt + 1)
    }
    // XState aborts the signal only if the actor stops before it receives this result (it then drops the result):
    // the lease is nobody's then, so it is released at once rather than at close.
    signal.addEventListener('abort', () => void this.table.release(record.lease, { force: true }), { once: true })
    return record.lease
  }

  #primary() {
    return primaryMachine.provide({
      actors: {
        openPrimary: fromPromise(({ input, signal }) => {
          const shard = this.shards.get(input.shardId)
          shard?.primaryOpening()
          return this.#openLease('primary', input.shardId, undefined, signal).catch((e: unknown) => {
            shard?.primaryOpenFailed(e)
            throw e
          })
        }),
        closeHandle: fromPromise(({ input }) => this.table.release(input.lease, { force: input.force === true })),
      },
      actions: {
        publish: (_, { shardId, lease }) => {
          const record = this.table.get(lease)
          if (record !== undefined) this.shards.get(shardId)?.publishPrimary(record)
        },
        withdraw: (_, { shardId, lease }) => this.shards.get(shardId)?.withdrawPrimary(lease),
      },
    })
  }

  #reader() {
    return readerMachine.provide({
      actors: {
        openReader: fromPromise(({ input, signal }) =>
          this.#openLease('reader', input.shardId, input.readerId, signal).catch((e: unknown) => {
            this.shards.get(input.shardId)?.readerOpenFailed(e)
            throw e
          }),
        ),
        refreshReader: fromPromise(({ input, signal }) => this.#openLease('reader', input.shardId, input.readerId, signal)),
        closeHandle: fromPromise(({ input }) => this.table.release(input.lease, { force: input.force === true })),
      },
      actions: {
        publish: (_, { shardId, readerId, lease }) => {
          const record = this.table.get(lease)
          if (record !== undefined) this.shards.get(shardId)?.publishReader(readerId, record)
        },
        withdraw: (_, { shardId, readerId, lease }) => this.shards.get(shardId)?.withdrawReader(readerId, lease),
        swap: (_, { shardId, readerId, from, to }) => {
          const record = this.table.get(to)
          if (record !== undefined) this.shards.get(shardId)?.publishReader(readerId, record)
          void this.table.release(from)
        },
        refreshFailed: (_, { shardId, readerId, error }) => this.shards.get(shardId)?.refreshFailed(readerId, error),
        refreshAllowed: (_, { shardId, readerId }) => this.shards.get(shardId)?.refreshAllowed(readerId),
      },
    })
  }

  /**
   * Pool maintenance, on the injected clock: retire idle readers (above min), recycle old ones, flush primaries
   * whose memtable waited unflushed longer than `flushIntervalMs` (so that a refresh replays a short WAL), and, once
   * a primary opened, lower RocksDB's compaction threads that are new (src/threads.ts).
   */
  maintain(): void {
    const now = this.#opts.clock.now()
    if (this.#lowersCompactions) lowerCompactionThreads()
    for (const [id, shard] of this.shards) {
      shard.flushIfOlder(now - this.#opts.freshness.flushIntervalMs)
      for (const [readerId, r] of shard.readers) {
        if (now - r.openedAt >= this.#opts.pool.maxLifetimeMs) this.#send(id, { type: 'RETIRE', readerId, reason: 'lifetime' })
        // A reader refreshing for waiting reads is not idle, whatever its last use.
        else if (r.inflight === 0 && !shard.refreshing.has(readerId) && now - r.lastUsedAt >= this.#opts.pool.idleMs) {
          this.#send(id, { type: 'RETIRE', readerId, reason: 'idle' })
        }
      }
    }
  }

  #schedule(): void {
    this.#timer = this.#opts.clock.setTimeout(() => {
      if (this.#closing !== undefined) return
      this.maintain()
      this.#schedule()
    }, this.#opts.maintenanceIntervalMs)
    // Maintenance alone must not keep the process alive (a backoff timer, by contrast, guards pending work).
    ;(this.#timer as { unref?: () => void } | undefined)?.unref?.()
  }

  stats(): IndexStats {
    const shards: ShardStats[] = []
    let primaries = 0
    let readers = 0
    for (const [id, shard] of this.shards) {
      const ref = this.supervisor(id)
      const snap = ref?.getSnapshot() as
        | { value: unknown; status: string; context: { primaryRestarts: { total: number }; readerRestarts: { total: number } }; children: Record<string, AnyActorRef | undefined> }
        | undefined
      const value = snap?.value as { active?: { primary: string; pool: string } } | string | undefined
      const active = typeof value === 'object' ? value.active : undefined
      const state: ShardStats['state'] =
        active !== undefined
          ? active.primary === 'up' || active.primary === 'absent' ? 'running' : (active.primary as 'starting' | 'restarting' | 'failed')
          : value === 'closed' || snap === undefined || snap.status === 'done' ? 'closed' : 'closing'
      const byState: Record<string, number> = {}
      let primary = 'none'
      for (const [childId, child] of Object.entries(snap?.children ?? {})) {
        if (child === undefined) continue
        const v = stateName((child.getSnapshot() as { value: unknown }).value)
        if (childId === 'primary') primary = v
        else byState[v] = (byState[v] ?? 0) + 1
      }
      if (shard.primary !== undefined) primaries++
      readers += shard.readers.size
      shards.push({
        id,
        topic: shard.address.topic,
        shard: shard.address.shard,
        state,
        pool: active?.pool === 'degraded' ? 'degraded' : 'healthy',
        primary,
        readers: byState,
        restarts: { primary: snap?.context.primaryRestarts.total ?? 0, readers: snap?.context.readerRestarts.total ?? 0 },
        queues: { pendingWrites: shard.pendingWrites, pendingReads: shard.pendingReads, inflight: shard.inflight },
        sequence: shard.ackSeq,
        flushes: shard.flushStats(),
        msgIdFilters: shard.msgIdStats(),
        views: [...shard.readers].map(([reader, r]) => ({ reader, sequence: r.seq, ageMs: this.#opts.clock.now() - r.openedAt })),
        integrity: { ...shard.integrity },
        served: { ...shard.served },
        ...(shard.failure === undefined ? {} : { cause: shard.failure }),
      })
    }
    return { shards, totals: { primaries, readers, handles: this.table.size } }
  }

  /**
   * Graceful close: stop accepting, let accepted work drain, close readers then primaries (the supervisors' ordered
   * shutdown), and after `closeTimeoutMs` release whatever is still open. Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#opts.clock.clearTimeout(this.#timer)
      for (const shard of this.shards.values()) shard.stop()
      // Scans waiting for their consumer are the consumer's, not work in flight: they end now, not at the timeout.
      for (const shard of this.shards.values()) shard.endStreams()
      let timer: unknown
      const timeout = new Promise<'timeout'>((resolve) => (timer = this.#opts.clock.setTimeout(() => resolve('timeout'), this.#opts.closeTimeoutMs)))
      await Promise.race([Promise.all([...this.shards.values()].map((s) => s.idle())), timeout])
      // Whatever still waits for a handle (a primary's open outlasted closeTimeoutMs) fails now.
      for (const shard of this.shards.values()) shard.abandon()
      let unsubscribe = (): void => {}
      const done = new Promise<void>((resolve) => {
        unsubscribe = this.root.subscribe((s) => s.status === 'done' && resolve()).unsubscribe
        if (this.root.getSnapshot().status === 'done') resolve()
      })
      this.root.send({ type: 'CLOSE' })
      await Promise.race([done, timeout])
      unsubscribe()
      // Stopping the tree aborts any open still running. The directory checks an open makes before RocksDB sees the
      // directory stop at their next step (they create directories), and an open waiting for its turn never starts:
      // waited for. Then the opens still in RocksDB settle and every handle is closed. All of it within closeTimeoutMs
      // of its own: what outlasts it (a stuck disk) finishes on its own, a handle released when its open completes.
      this.root.stop()
      let releaseTimer: unknown
      const releaseTimeout = new Promise<void>((resolve) => (releaseTimer = this.#opts.clock.setTimeout(resolve, this.#opts.closeTimeoutMs)))
      await Promise.race([Promise.allSettled([...this.#preparing]), releaseTimeout])
      await this.table.releaseAll(releaseTimeout)
      this.#opts.clock.clearTimeout(releaseTimer)
      for (const shard of this.shards.values()) shard.handlesReleased()
      // Every handle is closed: the reader worker threads or child processes end (nothing may open there any more).
      await this.readerWorkers?.close()
      // A pending close timer would keep the process alive for closeTimeoutMs.
      this.#opts.clock.clearTimeout(timer)
    })()
    return this.#closing
  }
}

/** A `missing` failure of a primary's open of an existing database, as the damage it is (reason `corruption`). */
const damaged = (e: StorageFailure, dir: string): StorageFailure =>
  new StorageFailure({
    reason: 'corruption',
    path: e.path,
    cause: e,
    message: `the database in ${dir} names a file that is gone (${e.message}): the directory is damaged; see the README, "Repairing a damaged shard" (rockvisor never repairs a shard on its own)`,
  })

/**
 * The failure of an open whose shard directory holds another shard's database (its identity entry, `found`, is not
 * `wanted`): reason `corruption`, path the directory. Nothing in it is changed; the message says how to put it right.
 */
const misplaced = (address: ShardAddress, shard: string, found: Uint8Array, wanted: Uint8Array): StorageFailure => {
  const text = (b: Uint8Array): string => JSON.stringify(readIdentity(b).text)
  return new StorageFailure({
    reason: 'corruption',
    path: address.dir,
    shard,
    message:
      `the directory ${address.dir} holds the database of shard ${text(found)}, not of shard ${text(wanted)} (its identity entry): ` +
      `shard directories were swapped, moved or restored to the wrong place, or the manifest's shard count changed since it was written. ` +
      `No read was answered from it and nothing in it was changed: put each shard directory back where its identity says, or restore the manifest's shard count`,
  })
}

/** The same failure, marked as one that restarting cannot cure (the shard gives up at once). */
const fatal = (e: StorageFailure, shard: string): StorageFailure =>
  new StorageFailure({ reason: e.reason, path: e.path, message: e.message, cause: e.cause, shard, fatal: true })

const stateName = (value: unknown): string => {
  if (typeof value === 'string') return value
  if (typeof value === 'object' && value !== null) {
    const [key, inner] = Object.entries(value)[0] ?? ['?', undefined]
    return key === 'ready' && typeof inner === 'string' ? inner : key
  }
  return String(value)
}
