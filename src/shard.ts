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
import type { LifecycleEvent } from '../actors/events.js'
import type { ShardCommand } from '../actors/shard-supervisor.js'
import type { Clock } from './clock.js'
import { Closed, InvalidInput, Overloaded, ShardUnavailable, StorageFailure, Timeout, isTransient, type FailureCause } from './errors.js'
import { identityKey, sequenceKey } from './keys.js'
import { FilterBudget, type PartitionMsgIds } from './msgids.js'
import { damagedEntry } from './store.js'
import { getManySettled, overriding, type SettledValues, type StorageHandle, type WriteOp } from './engine.js'
import type { ShardAddress } from './layout.js'
import type { SegmentOffset } from './meta.js'
import { RecentWrites } from './recent.js'
import { WalTail, type TailRead } from './wal-tail.js'
import type { HandleTable, LeaseRecord } from './resources.js'
import { stampOps, type Stamp } from './views.js'

/** The limits a shard's data plane enforces. */
export interface ShardLimits {
  readonly maxPendingWrites: number
  readonly maxPendingReads: number
  /** Reads running or waiting on this shard at once: beyond this, a read is refused with `Overloaded`. */
  readonly maxInflightReads: number
  readonly growAt: number
  readonly refreshesPerShard: number
  /** Flush the primary's memtable once this many records were written since the last flush. */
  readonly flushEveryRecords: number
  /**
   * Flush the primary's memtable once this many bytes (keys and values) were written since the last flush: a quarter
   * of RocksDB's write buffer, so that RocksDB never switches the memtable by itself (see src/views.ts).
   */
  readonly flushEveryBytes: number
  /**
   * Bytes of recent writes a writer-mode shard keeps in memory for fresh point reads at its readers (see
   * src/recent.ts); 0 keeps none (fresh reads that no reader's view satisfies go to the primary).
   */
  readonly recentWritesBytes: number
  /** Reader mode: feed the memory of recent writes from the directory's write-ahead logs (see src/wal-tail.ts). */
  readonly followLogs?: boolean
  /** Bytes the msgId filters of the shard may take together (see src/msgids.ts, FilterBudget). */
  readonly msgIdFilterBytes: number
}

/** Which handles answered this shard's reads (see `ShardStats.served`). */
export interface ServedCounts {
  /** Reads the primary answered. */
  primary: number
  /** Reads a reader answered from its view. */
  readers: number
  /** Point reads a reader answered from the shard's memory of recent writes (newer than the reader's view). */
  memory: number
}

/** What a shard counts about the integrity of what it serves (see `ShardStats.integrity`). */
export interface IntegrityCounts {
  /** New reader views that missed data (a hole left by a flush racing the open) and were discarded unserved. */
  tornViews: number
  /** Reads that met a corrupted block (each failed with StorageFailure `corruption`; the handle kept serving). */
  corruptReads: number
  /** Refreshes whose new open failed (the old view kept serving). */
  refreshFailures: number
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

/**
 * The by-time entries of one partition with timestamps in [from, to]: what a range read or a scan reads. A view that
 * no write after it touched there holds them as they are now (see `RecentWrites.touchesTimes`).
 */
export interface TimeWindow {
  readonly partition: number
  readonly from: number
  readonly to: number
}

/** Whether a reader's view satisfies a need (never true for a primary-only need). */
export const satisfies = (record: LeaseRecord, need: Need): boolean =>
  !need.primary && record.seq >= need.seq && (need.since === undefined || record.openedAt >= need.since)

/** How long a request may wait before it runs: until clock time `at`, or until `signal` aborts. */
export interface Deadline {
  readonly at: number
  /** The bound as the caller gave it (for the error). */
  readonly timeoutMs: number
  readonly signal?: AbortSignal | undefined
}

/**
 * What a queued request waits for: the text a Timeout gives it (`waitedFor`, and its message), and the handles whose
 * opens it waits on, so that the Timeout can name the failed open that explains the wait (none for a turn in the
 * write queue, a flush, a MultiGet to finish: no open failure explains those).
 */
interface Waiting {
  readonly text: string
  readonly opens: readonly ('primary' | 'reader')[]
}

/**
 * One request's waiting: what it waits for now (for the Timeout), how to take it out of a queue, and whether it
 * started (a request that started its I/O is no longer bound by its deadline) or expired (it never will).
 */
class Wait {
  #waitingFor: Waiting | (() => Waiting)
  cancel: (() => void) | undefined
  expired: Timeout | undefined
  started = false
  onStart: (() => void) | undefined
  /** `waitingFor`: what it waits for, or how to say it (when a Timeout asks: most requests never wait). */
  constructor(waitingFor: Waiting | (() => Waiting)) {
    this.#waitingFor = waitingFor
  }

  get waitingFor(): Waiting {
    if (typeof this.#waitingFor === 'function') this.#waitingFor = this.#waitingFor()
    return this.#waitingFor
  }

  set waitingFor(waiting: Waiting) {
    this.#waitingFor = waiting
  }

  /** Called right before the request's I/O: fails if the deadline passed, else lifts the deadline. */
  admit(): void {
    if (this.expired !== undefined) throw this.expired
    this.started = true
    this.onStart?.()
  }
}

/** A stream's claim on the handle it reads (see `ShardRuntime.stream`). */
interface StreamHold {
  readonly released: boolean
  release(): void
}

interface Waiter {
  readonly kind: 'read' | 'write'
  /** For reads: what a reader's view must satisfy to serve it. */
  readonly need: Need
  /** The handle table's ticket when the read began waiting: a handle opened since reflects everything written then. */
  readonly ticket: number
  readonly resolve: (r: LeaseRecord) => void
  readonly reject: (e: unknown) => void
  /** The request's waiting state (its deadline takes the waiter out of the queue). */
  readonly wait: Wait | undefined
  /** Views opened since this read began waiting that still fell short of its sequence (see publishReader). */
  shortViews: number
}

/** A failed open a shard remembers (see ShardRuntime's Timeouts): whose, and why. */
interface OpenFailure {
  readonly role: 'primary' | 'reader'
  readonly cause: FailureCause
}

/** A point read waiting to go out in a MultiGet (see `ShardRuntime.pointRead`). */
interface PointRead {
  readonly key: Uint8Array
  readonly need: Need
  readonly deadline: Deadline
  readonly decode: (context: unknown, value: Uint8Array) => unknown
  readonly context: unknown
  readonly resolve: (value: unknown) => void
  readonly reject: (e: unknown) => void
  /** 1 once it failed and is retried (a read is retried once). */
  attempt: number
  /** Its MultiGet started once: its deadline no longer holds. */
  started: boolean
  /** It was answered or failed (once). */
  settled: boolean
  /** While it waits for a MultiGet with a signal: the signal's listener (see #deferPointReads). */
  onAbort?: (() => void) | undefined
}

/** What waits for a poll of the logs: a point read (routed again after it), or a range read or scan (resumed). */
type TailWaiter = PointRead | (() => void)

/** Most keys in one coalesced MultiGet. */
const maxChunk = 256

/**
 * When the point reads of a turn go out: in the event loop's check phase, after every I/O callback of the turn has
 * run (each MultiGet that completes lets its callers issue their next reads in the same turn), never on a timer. A
 * microtask goes out before most callers have issued their next read: measured with 1,000 callers, a quarter of the
 * rate.
 */
const scheduleTurn = (run: () => void): void => void setImmediate(run)

/**
 * Point reads sent per turn of the event loop, all shards of the process together. The rest wait for the next turn,
 * so one turn's work stays short (about 256 x 7 us) and the I/O completions between two turns (a write's, say) are
 * never held up behind thousands of reads: reads cannot starve writes.
 */
const readsPerTurn = 256

/**
 * While a write of this process waits or runs, point reads go out in smaller turns and MultiGets: each I/O completion
 * of a write (its lookup, its batch, its flush) waits behind the answers of the MultiGets that completed with it, so
 * the smaller they are, the sooner the write moves on. Without writes, reads keep the larger ones (less overhead per
 * read). The trade (the writer's share against reads/s) is measured by bench/placement.ts, BENCHMARKS.md section 6.
 */
const readsPerTurnBesideWrites = 64

/** Writes of this process queued or running, all shards together (see {@link readsPerTurnBesideWrites}). */
let writesWaiting = 0

/** Point reads per turn, and most keys per MultiGet, now. */
const turnSize = (): number => (writesWaiting > 0 ? readsPerTurnBesideWrites : readsPerTurn)

/** Shards with point reads waiting to be sent, in the order they are served (round robin). */
const waitingShards = new Set<{ sendWaiting(budget: number): number }>()
let turnScheduled = false

/**
 * Point reads sent at once (alone) since the scheduler last ran a turn. A lone read answered from memory settles at
 * once, and its caller may issue the next one in the same microtask queue: without a bound, such callers would never
 * let the event loop turn (and a write's I/O completion would wait behind them). The count is not reset at every
 * turn (that would cost a `setImmediate` per lone read): once it reaches a turn's size, the next read waits for a
 * turn of the scheduler, which starts the count over. So at most a turn's size of reads go out between two turns of
 * the scheduler, and a lone caller waits for one in that many reads.
 */
let sentAtOnce = 0

/** Whether a lone point read may go out at once (else it waits for the next turn, as reads of a busy shard do). */
const goesAtOnce = (): boolean => {
  if (sentAtOnce >= turnSize()) return false
  sentAtOnce++
  return true
}

/**
 * Sends up to {@link readsPerTurn} waiting point reads, shard by shard; shards with reads left go again next turn.
 * One turn is scheduled at a time: a shard with reads left has already asked for the next one (`awaitTurn`), and a
 * second would double the reads of every turn while a backlog lasts (20,000 reads in 6 turns; test/fairness.test.ts).
 */
const runTurn = (): void => {
  turnScheduled = false
  sentAtOnce = 0
  let budget = turnSize()
  for (const shard of waitingShards) {
    if (budget <= 0) break
    waitingShards.delete(shard)
    budget -= shard.sendWaiting(budget)
  }
  if (waitingShards.size > 0 && !turnScheduled) {
    turnScheduled = true
    scheduleTurn(runTurn)
  }
}

/**
 * Point-read MultiGets running at once in this process, at most: half of libuv's pool (UV_THREADPOOL_SIZE, 4 by
 * default), so that however many reads are waiting, a write, a flush or a reader's open finds a thread without
 * queueing behind them. Reads beyond it wait, and go out in larger chunks.
 */
const maxMultiGetsOut = Math.max(1, Math.floor((Number(process.env.UV_THREADPOOL_SIZE) || 4) / 2))

/**
 * Point-read MultiGets running at once while a write of this process waits or runs: one. Every answer of a MultiGet
 * crosses the main thread, which the writer needs for each step of its batch; with compactions at the lowest CPU
 * priority (src/threads.ts), one at a time beside writes kept the writer at 0.48x, 0.50x and 0.54x its rate alone
 * under 1,000 `fresh` callers, for 20,935 / 24,943 / 25,033 reads/s, where two kept it at 0.36x, 0.40x and 0.40x
 * for 32,362 / 33,338 / 34,669 (three alternating rounds of bench/placement.ts's `fresh` child): reads never starve
 * the writer, for a quarter to a third fewer reads while it writes. Without writes, {@link maxMultiGetsOut}.
 */
const maxMultiGetsOutBesideWrites = 1

/** Point-read MultiGets that may run at once now. */
const multiGetsAllowed = (): number => (writesWaiting > 0 ? maxMultiGetsOutBesideWrites : maxMultiGetsOut)
let multiGetsOut = 0
/** Shards whose point reads wait for a MultiGet to finish. */
const waitingForMultiGet = new Set<{ sendDeferred(): void }>()

/** What a deferred point read waits for (a Timeout's `waitedFor`). */
const waitingForAMultiGet: Waiting = {
  text: `a point-read MultiGet to finish (at most ${maxMultiGetsOut} run at once in this process, ${maxMultiGetsOutBesideWrites} while a write waits)`,
  opens: [],
}

/** A point-read MultiGet finished: the reads waiting for one go out (see {@link sendWaitingForMultiGet}). */
const multiGetDone = (): void => {
  multiGetsOut--
  sendWaitingForMultiGet()
}

/**
 * A MultiGet is free: the shards whose reads wait for one send theirs, in the order they waited, while MultiGets are
 * free (each shard as many as it can; see `sendDeferred`). A shard that sent and still has reads waiting waits behind
 * the shards that got none this time, so that shards take the free MultiGets in turn. (Only when a MultiGet
 * finishes: sending the reads waiting also when the last write of the process ended, which lets two MultiGets of 256
 * keys run instead of one of 64, sent them between two batches of a writer that writes back to back, and in three
 * alternating rounds of bench/placement.ts's `fresh` child kept it at 0.30x to 0.36x its rate alone, against 0.47x to
 * 0.56x, for twice the reads.)
 */
const sendWaitingForMultiGet = (): void => {
  if (waitingForMultiGet.size === 0 || multiGetsOut >= multiGetsAllowed()) return
  const shards = [...waitingForMultiGet]
  waitingForMultiGet.clear()
  let i = 0
  try {
    for (; i < shards.length && multiGetsOut < multiGetsAllowed(); i++) shards[i]!.sendDeferred()
  } finally {
    // (The shards that sent have put themselves back if they still wait: behind those that did not get a turn, or
    // that a failure kept from theirs.)
    if (i < shards.length) {
      const sent = [...waitingForMultiGet]
      waitingForMultiGet.clear()
      for (; i < shards.length; i++) waitingForMultiGet.add(shards[i]!)
      for (const shard of sent) waitingForMultiGet.add(shard)
    }
  }
}

/**
 * Range reads running at once in this process, at most (each is two seeks at once, a few calls into libuv's pool
 * each); the others wait, in the order they came. Without a bound, 1,000 callers of range reads kept 2,000 seeks
 * queued in the pool, and each of the writer's calls waited behind them: it kept 1% of its rate alone (bench/
 * placement.ts). While a write of this process waits or runs, fewer run at once, as point reads go out in smaller
 * turns then: measured under a steady writer and 1,000 callers, 4 at once kept the writer at 0.52x its rate alone
 * (1,500 range reads/s), 16 at 0.34x (4,000/s), 64 at 0.16x (7,700/s). Scans take these places too, one step of
 * their iterator at a time (see `stream`): without, 1,000 scans kept the writer at 0.3% of its rate alone.
 */
const maxRangeReads = 16
const maxRangeReadsBesideWrites = 4

/**
 * Places of one kind of read in this process: at most `most` at once, `besideWrites` while a write of the process
 * waits or runs; the others wait in the order they came, each handed the place it waits for.
 */
class Places {
  #out = 0
  readonly #waiting: (() => void)[] = []
  constructor(
    readonly most: number,
    readonly besideWrites: number,
  ) {}

  /** How many may run at once now. */
  now(): number {
    return writesWaiting > 0 ? this.besideWrites : this.most
  }

  /** Takes a place: at once (`undefined`), or a promise that resolves once one is handed over. */
  take(): Promise<void> | undefined {
    if (this.#waiting.length === 0 && this.#out < this.now()) {
      this.#out++
      return undefined
    }
    return new Promise<void>((resolve) => this.#waiting.push(resolve))
  }

  /** Gives a place back: the places free now go to the oldest waiting. */
  done(): void {
    this.#out--
    while (this.#waiting.length > 0 && this.#out < this.now()) {
      this.#out++
      this.#waiting.shift()!()
    }
  }
}

const rangeReads = new Places(maxRangeReads, maxRangeReadsBesideWrites)

/**
 * Reads of scans (one step of a scan's iterator: a chunk) running at once in this process, at most: 16, and 1 while
 * a write of the process waits or runs. A scan step also takes a range read's place (below): this bounds the scans
 * among them, as every entry of a scan crosses the main thread. Measured under a steady writer and 1,000 scanners of
 * 100 metas (bench/placement.ts): scans taking the range reads' 4 places kept the writer at 0.32x its rate alone
 * (1,000 scans/s); 2 at 0.43x (665/s); 1 at 0.59x (500/s).
 */
const scanSteps = new Places(maxRangeReads, 1)

/** What a range read or a scan waiting for its place waits for (for a Timeout). */
const waitingForRangeRead = (): Waiting => ({
  text: `a range read to finish (at most ${rangeReads.now()} run at once in this process now, ${scanSteps.now()} of them reads of scans)`,
  opens: [],
})


/** Takes a place for a step of a scan: one among the scans' (see {@link scanSteps}), then one among the range reads'. */
const scanStepPlace = (): Promise<void> | undefined => {
  const gate = scanSteps.take()
  return gate === undefined ? rangeReads.take() : gate.then(() => rangeReads.take())
}

/** A step of a scan finished: both its places go back. */
const scanStepDone = (): void => {
  rangeReads.done()
  scanSteps.done()
}

/** `shard` has point reads waiting: it is served in a coming turn. */
const awaitTurn = (shard: { sendWaiting(budget: number): number }): void => {
  waitingShards.add(shard)
  if (!turnScheduled) {
    turnScheduled = true
    scheduleTurn(runTurn)
  }
}

/**
 * How many views opened after a read began waiting may fall short of its token before the token is judged to be
 * ahead of the data. One is not proof: a read-only open racing a flush can take a consistent but older view.
 */
const shortViewsBeforeAhead = 3

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
  /** Records written since the primary's last flush began, and when the oldest of them was written. */
  unflushed = 0
  firstUnflushedAt = 0
  /** Bytes of keys and values written since the primary's last flush began. */
  unflushedBytes = 0
  /**
   * The flush epoch the next batch of the primary stamps (see src/views.ts): one more than the greatest epoch on
   * disk when the primary opened; then a *boundary* epoch for the batches written while a flush runs (they may land
   * in the memtable being flushed or in the next one), and after the flush a *solid* epoch, which only the new
   * memtable holds (the boundary epoch again if no batch took it).
   */
  epoch = 0
  /** A batch stamped {@link epoch}. */
  #epochTaken = false
  /**
   * A batch stamped while no flush ran has been written since the last flush began: the memtable the next flush
   * switches out holds a solid epoch of its own. No flush begins without it.
   */
  #solid = false
  /** The primary's flush in flight, if any (writes go on beside it). */
  #flushing: Promise<void> | undefined
  /** Records and bytes of the memtable the flush in flight switches out (written before it began). */
  #switchedOut = { records: 0, bytes: 0 }
  /** Flushes ended, and writes waiting for the one in flight (see {@link flushStats}). */
  #flushesDone = 0
  #writesWaitingForFlush = 0

  /** The flushes of the primary: how many ended, whether one runs, how many writes wait for it. */
  flushStats(): { done: number; running: boolean; writesWaiting: number } {
    return { done: this.#flushesDone, running: this.#flushing !== undefined, writesWaiting: this.#writesWaitingForFlush }
  }

  /** The msgId filters of the partitions written: how many, how many still learning, their bytes, how many refused. */
  msgIdStats(): { partitions: number; learning: number; bytes: number; refused: number } {
    let partitions = 0
    let learning = 0
    let refused = 0
    for (const ids of this.msgIds.values()) {
      if (!ids.filtered) refused++
      else {
        partitions++
        if (!ids.complete) learning++
      }
    }
    return { partitions, learning, bytes: this.msgIdBudget.used, refused }
  }

  /** Waits for the flush in flight while a write of `incoming` records could overflow the memtable beside it. */
  async #untilRoomBesideFlush(incoming: number): Promise<void> {
    while (this.#flushing !== undefined && this.#overflowing(incoming)) {
      this.#writesWaitingForFlush++
      try {
        await this.#flushing
      } finally {
        this.#writesWaitingForFlush--
      }
    }
  }
  /**
   * Per partition written by this index: a place (segmentId, offset) at or above every place the partition holds
   * (`null`: it holds none), learned by one seek at the partition's first write and raised before each write (see
   * `store.putMetas`, `placeBound`). Only this index's primary writes the shard, so the bound holds while that
   * primary stays open; a new primary starts over (see publishPrimary).
   */
  readonly placeBounds = new Map<number, SegmentOffset | null>()
  /**
   * Per partition written by this index: which msgIds it may hold, learned from its by-id view a chunk per write
   * (see src/msgids.ts), so that writes look up only the msgIds that may be there. Starts over with each primary,
   * as {@link placeBounds} does.
   */
  readonly msgIds = new Map<number, PartitionMsgIds>()
  /** The memory of those filters, taken as they grow (a new one with each primary, as the filters). */
  msgIdBudget: FilterBudget
  /** Integrity counters (see {@link IntegrityCounts}). */
  readonly integrity: IntegrityCounts = { tornViews: 0, corruptReads: 0, refreshFailures: 0 }
  /** Which handles answered reads (see {@link ServedCounts}). */
  readonly served: ServedCounts = { primary: 0, readers: 0, memory: 0 }
  /**
   * The writes that readers' views may not hold yet, merged into point reads at a reader (see src/recent.ts): in
   * writer mode the batches this shard applied; in reader mode the batches read from the directory's logs (see
   * {@link #tail}). `undefined` when `recentWritesBytes` is 0, and in reader mode without `followLogs`.
   */
  readonly recent: RecentWrites | undefined
  /** Reader mode: follows the directory's write-ahead logs into {@link recent} (src/wal-tail.ts). */
  readonly #tail: WalTail | undefined
  /**
   * Reader mode: the sequence of the last batch fed from the logs into {@link recent}, every batch after the memory's
   * floor up to it fed in order; 0 while none is (the tail started over, or read what it cannot use).
   */
  #tailTop = 0
  /** Reader mode: when the last poll that read the logs to their end began: every write acknowledged before is fed. */
  #tailAt = Number.NEGATIVE_INFINITY
  /** Reader mode: point reads waiting for the poll of the logs in flight (undefined: none runs), and for the next. */
  #tailPolling: TailWaiter[] | undefined
  #tailNext: TailWaiter[] = []

  /** The failure that made the shard give up (its primary, or its readers in reader mode), until it recovers. */
  failure: FailureCause | undefined
  /** Readers whose refresh failed, waiting out their refresh backoff: no refresh is asked of them meanwhile. */
  readonly cooling = new Set<string>()
  /** Announces a lifecycle event about this shard's data plane (set by the runtime). */
  report: (event: LifecycleEvent) => void = () => {}
  /** The directory is locked by another instance (set by a failed open, cleared by a successful one). */
  locked: StorageFailure | undefined
  closed = false
  /** Requests running or queued. */
  inflight = 0
  /** Writes queued or running. */
  pendingWrites = 0
  /** Reads running or waiting. */
  pendingReads = 0
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
  ) {
    const memory = limits.recentWritesBytes > 0 && (mode === 'writer' || limits.followLogs === true)
    this.recent = memory ? new RecentWrites(0, limits.recentWritesBytes) : undefined
    this.#tail = memory && mode === 'reader' ? new WalTail(address.dir) : undefined
    this.msgIdBudget = new FilterBudget(limits.msgIdFilterBytes)
  }

  // ---- called by the machines' provided actions ----

  /** The primary's handle is ready. Writes continue from the sequence stored on disk. */
  publishPrimary(record: LeaseRecord): void {
    this.primary = record
    this.#openFailure = undefined
    this.#primaryOpening = false
    this.exhausted = false
    this.locked = undefined
    this.failure = undefined
    // A new epoch for the memtable this primary starts: whatever RocksDB recovered at open is in older ones.
    this.epoch = record.epoch + 1
    this.#epochTaken = false
    this.#solid = false
    this.unflushed = 0
    this.unflushedBytes = 0
    // The directory was unlocked while no primary held it: learn each partition's places from disk again rather than
    // trust bounds from before (one seek per partition at its next write).
    this.placeBounds.clear()
    this.msgIds.clear()
    this.msgIdBudget = new FilterBudget(this.limits.msgIdFilterBytes)
    this.seq = Math.max(this.seq, record.seq)
    this.ackSeq = Math.max(this.ackSeq, record.seq)
    // Another writer may have written while the directory was unlocked: only views that hold everything on disk now
    // may be merged with what this primary writes.
    this.recent?.reset(this.seq)
    const waiters = this.#waiters
    this.#waiters = []
    // A read waiting with a token beyond what the directory holds now would be answered as if it were met.
    for (const w of waiters) {
      if (w.kind === 'read' && w.need.seq > this.seq) w.reject(this.#tokenAhead(w.need, this.seq))
      else w.resolve(record)
    }
  }

  withdrawPrimary(lease: string): void {
    if (this.primary?.lease === lease) this.primary = undefined
  }

  /**
   * The index closed and released every handle, also those its actors had no time to withdraw (a close that
   * reached `closeTimeoutMs` stops them mid-close): nothing of this shard is published any more.
   */
  handlesReleased(): void {
    this.primary = undefined
    this.readers.clear()
    this.refreshing.clear()
    this.#tail?.close()
  }

  publishReader(readerId: string, record: LeaseRecord): void {
    this.readers.set(readerId, record)
    if (this.#openFailure?.role === 'reader') this.#openFailure = undefined
    this.refreshing.delete(readerId)
    this.#scaleRequested = false
    // Reads waiting for a view this fresh go now; the others ask for another refresh.
    const ready = this.#waiters.filter((w) => w.kind === 'read' && satisfies(record, w.need))
    // A view opened after the read began waiting should reflect everything written by then. If views keep falling
    // short of the read's token, the token is ahead of the data (not from this root, or its write was lost), and
    // waiting for more refreshes would spin: such reads fail. One short view is no proof (an open racing a flush may
    // take an older, consistent view), and a sequence this index acknowledged itself is never ahead.
    const ahead = this.#waiters.filter((w) => {
      if (w.kind !== 'read' || ready.includes(w) || record.ticket < w.ticket || record.seq >= w.need.seq) return false
      w.shortViews++
      return w.shortViews >= shortViewsBeforeAhead && !(this.mode === 'writer' && w.need.seq <= this.ackSeq)
    })
    this.#waiters = this.#waiters.filter((w) => !ready.includes(w) && !ahead.includes(w))
    for (const w of ready) w.resolve(record)
    for (const w of ahead) w.reject(this.#tokenAhead(w.need, record.seq))
    this.#pruneRecent()
    this.#refreshForWaiters()
  }

  withdrawReader(readerId: string, lease: string): void {
    if (this.readers.get(readerId)?.lease === lease) this.readers.delete(readerId)
    this.refreshing.delete(readerId)
    this.#pruneRecent()
    if (this.exhausted && this.readers.size === 0) return this.#rejectWaiters(() => this.#unavailable())
    // The reader may have been refreshing for reads that still wait: another one takes over.
    this.#refreshForWaiters()
  }

  /**
   * The primary is exhausted: queued writes fail with ShardUnavailable; queued reads wait for a reader to refresh
   * while the shard has readers, and fail too when it has none.
   */
  primaryExhausted(cause?: FailureCause): void {
    this.exhausted = true
    this.failure = cause
    if (this.readers.size === 0) return this.#rejectWaiters(() => this.#unavailable())
    const writes = this.#waiters.filter((w) => w.kind === 'write' || w.need.primary)
    this.#waiters = this.#waiters.filter((w) => !writes.includes(w))
    for (const w of writes) w.reject(this.#unavailable())
    this.#refreshForWaiters()
  }

  /** The readers are exhausted (`degraded`) or back (`recovered`). In reader mode, nothing is left to serve reads. */
  poolDegraded(degraded: boolean, cause?: FailureCause): void {
    this.degraded = degraded
    if (this.mode === 'reader') this.failure = degraded ? cause : undefined
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

  /** A reader's refresh failed: its old view keeps serving; no refresh is asked of it until it has cooled down. */
  refreshFailed(readerId: string, error: unknown): void {
    this.refreshing.delete(readerId)
    this.readerOpenFailed(error)
    this.cooling.add(readerId)
    this.integrity.refreshFailures++
    this.report({ type: 'refresh-failed', shard: this.address.id, actor: readerId, detail: error instanceof Error ? error.message : String(error) })
    // Another reader may take over the reads that wait.
    this.#refreshForWaiters()
  }

  /** A reader's refresh backoff is over: it may be asked to refresh again (for the reads still waiting, say). */
  refreshAllowed(readerId: string): void {
    this.cooling.delete(readerId)
    this.#refreshForWaiters()
  }

  /** A reader's new view missed data and was discarded (see src/views.ts). */
  tornView(actor: string, detail: string): void {
    this.integrity.tornViews++
    this.report({ type: 'torn-view', shard: this.address.id, actor, detail })
  }

  /** The index is closing: stop accepting, and fail what waits for a handle, unless it waits for a primary that opens. */
  stop(): void {
    this.closed = true
    // Requests accepted before the close waiting for a primary that is opening now wait on: the open ends soon,
    // and they finish (or fail with its failure). A primary that is not opening (backing off, given up) is not
    // waited for.
    if (!this.#primaryOpening) this.abandon()
  }

  /** Fails every request still waiting for a handle with Closed (the index is closing and stopped waiting). */
  abandon(): void {
    this.#rejectWaiters(() => new Closed({ message: `shard ${this.address.id} is closed` }))
  }

  /** The primary's open started (its requests may wait for it, also once the shard is stopped). */
  primaryOpening(): void {
    this.#primaryOpening = true
  }

  /** The primary's open failed: once the shard is stopped, what waited for it fails with Closed. */
  primaryOpenFailed(error?: unknown): void {
    this.#primaryOpening = false
    // (An open abandoned because its actor stopped is no failure of the directory.)
    if (error instanceof StorageFailure) this.#openFailure = { role: 'primary', cause: { reason: error.reason, path: error.path, message: error.message } }
    if (this.closed) this.abandon()
  }

  /** A reader's open or refresh failed: remembered for the Timeouts of requests waiting for a view (see #timeout). */
  readerOpenFailed(error: unknown): void {
    if (error instanceof StorageFailure && this.#openFailure?.role !== 'primary') {
      this.#openFailure = { role: 'reader', cause: { reason: error.reason, path: error.path, message: error.message } }
    }
  }

  /**
   * The last failed open of the primary or of a reader since one last succeeded: what a request that times out
   * waiting for a handle is told (see #timeout).
   */
  #openFailure: OpenFailure | undefined

  /** A primary's open is running (from {@link primaryOpening} to its publication or failure). */
  #primaryOpening = false

  /** Resolves when no request runs or waits on this shard. */
  idle(): Promise<void> {
    if (this.inflight === 0) return Promise.resolve()
    return new Promise((resolve) => (this.#idle = resolve))
  }

  // ---- the request paths ----

  /**
   * Runs `fn` on the primary as the next write of this shard (writes to a shard are serialized; a flush runs beside
   * them, see {@link #startFlush}). `nextStamp` hands out the sequence and the flush epoch of each batch `fn` writes;
   * `records` is how many keys its one batch writes (for the flush triggers). A `fn` that writes several batches
   * passes 0 and calls `between(records)` after each: it counts them, begins a flush when they reach a trigger, and
   * waits for a running flush when the memtable could overflow, as between two writes. A storage
   * failure is reported to the primary's supervisor and the write retried once on the restarted primary (injected
   * and RocksDB write failures are never partially applied).
   */
  write<T>(
    fn: (handle: StorageHandle, nextStamp: () => Stamp, between: (records: number) => Promise<void>) => Promise<T>,
    records = 0,
    deadline?: Deadline,
  ): Promise<T> {
    this.#assertOpen()
    if (this.pendingWrites >= this.limits.maxPendingWrites) {
      return Promise.reject(new Overloaded({ shard: this.address.id, message: `shard ${this.address.id}: ${this.pendingWrites} writes already pending` }))
    }
    const wait = new Wait({ text: `its turn in the write queue of shard ${this.address.id} (${this.pendingWrites} writes ahead)`, opens: [] })
    this.pendingWrites++
    writesWaiting++
    this.inflight++
    const run = this.#writeChain.then(async () => {
      for (let attempt = 0; ; attempt++) {
        // While a flush runs, the batches beside it and the memtable it switches out may share a memtable: once
        // they hold twice the triggers, wait for the flush to end (see #startFlush).
        if (this.#flushing !== undefined && this.#overflowing(records)) {
          if (!wait.started) wait.waitingFor = { text: `the flush of shard ${this.address.id}'s primary to end`, opens: [] }
          await this.#untilRoomBesideFlush(records)
        }
        if (wait.expired !== undefined) throw wait.expired
        // (#primaryFor returns a ready primary at once, or names the wait for it before it waits.)
        const record = await this.#primaryFor('write', { seq: 0, primary: true }, wait)
        if (!wait.started) wait.admit()
        record.inflight++
        // A batch was stamped while no flush ran, and is not counted yet.
        let solid = false
        /**
         * The sequence of the last batch this attempt stamped. Only it may be acknowledged: a sequence taken by an
         * attempt that failed is burned (never on disk), and a write that stamped nothing (a retention with nothing
         * to delete) acknowledges nothing new, so its token is the last sequence on disk, never a burned one.
         */
        let stamped: number | undefined
        /** Counts a written batch of `n` records: its solid epoch, the triggers, and maybe a flush. */
        const count = (n: number): void => {
          if (solid) this.#solid = true
          solid = false
          if (this.unflushed === 0 && n > 0) this.firstUnflushedAt = this.clock.now()
          this.unflushed += n
          if (this.#full()) this.#startFlush(record)
        }
        try {
          const result = await fn(
            this.#recording(record),
            () => {
              this.#epochTaken = true
              if (this.#flushing === undefined) solid = true
              stamped = ++this.seq
              return { seq: stamped, epoch: this.epoch }
            },
            async (n) => {
              count(n)
              // The next batch is taken to be as large as this one.
              await this.#untilRoomBesideFlush(n)
            },
          )
          if (stamped !== undefined) this.ackSeq = stamped
          count(records)
          return result
        } catch (e) {
          if (!(e instanceof StorageFailure) || attempt >= 1 || this.closed) throw e
          if (!isTransient(e)) {
            // Not cured by trying again now: the write fails at once with its cause. A full disk leaves RocksDB
            // refusing writes until it reopens: the primary reopens (under backoff), and the writes after it probe.
            if (e.reason === 'no-space') this.fault(record, e)
            throw e
          }
          this.fault(record, e)
        } finally {
          this.table.finished(record)
        }
      }
    })
    this.#writeChain = run.catch(() => undefined)
    const settled = run.finally(() => {
      this.pendingWrites--
      writesWaiting--
      this.#done()
    })
    return this.#bounded(deadline, wait, settled)
  }

  /** Per primary record: its handle as writes see it (see #recording). */
  readonly #recordingHandles = new WeakMap<LeaseRecord, StorageHandle>()

  /**
   * The primary's handle as a write sees it: each batch it applies is recorded, at the sequence just handed to it,
   * into the memory of recent writes before the write returns (so before it is acknowledged); and the first batch
   * after an open that found no identity entry in the shard carries that entry (`identityPending`). Without either,
   * the handle itself.
   */
  #recording(record: LeaseRecord): StorageHandle {
    const recent = this.recent
    if (recent === undefined && record.identityPending === undefined) return record.handle
    let wrapped = this.#recordingHandles.get(record)
    if (wrapped === undefined) {
      const inner = record.handle
      wrapped = overriding(inner, {
        write: async (ops: readonly WriteOp[]) => {
          const identity = record.identityPending
          await inner.write(identity === undefined ? ops : [...ops, { type: 'put', key: identityKey, value: identity }])
          if (identity !== undefined) record.identityPending = undefined
          // Writes are serialized per shard and each batch takes its stamp just before it is written: this.seq is
          // this batch's sequence.
          recent?.record(ops, this.seq)
        },
      })
      this.#recordingHandles.set(record, wrapped)
    }
    return wrapped
  }

  /** Drops the recent writes that every reader's view holds (all of them when no reader serves). */
  #pruneRecent(): void {
    if (this.recent === undefined) return
    let oldest = this.mode === 'writer' ? this.seq : this.#tailTop
    for (const r of this.readers.values()) if (r.seq < oldest) oldest = r.seq
    this.recent.prune(oldest)
  }

  /**
   * `work` (already started, waiting as `wait` says), or a {@link Timeout} once `deadline` passes or its signal aborts
   * while the request has not started its I/O yet: the request is then taken out of any queue and never runs. Work
   * that started finishes, deadline or not. `work`'s outcome is always handled.
   */
  #bounded<T>(deadline: Deadline | undefined, wait: Wait, work: Promise<T>): Promise<T> {
    // A request that started already (its handle was at hand) is no longer bound by its deadline.
    if (deadline === undefined || wait.started) return work
    return new Promise<T>((resolve, reject) => {
      let settled = false
      let timer: unknown
      const onAbort = (): void => expire(true)
      const cleanup = (): void => {
        this.clock.clearTimeout(timer)
        deadline.signal?.removeEventListener('abort', onAbort)
      }
      const expire = (aborted: boolean): void => {
        if (settled || wait.started) return
        settled = true
        cleanup()
        const error = this.#timeout(deadline, wait.waitingFor, aborted)
        wait.expired = error
        wait.cancel?.()
        reject(error)
      }
      wait.onStart = cleanup
      work.then(
        (value) => {
          if (settled) return
          settled = true
          cleanup()
          resolve(value)
        },
        (e: unknown) => {
          if (settled) return
          settled = true
          cleanup()
          reject(e)
        },
      )
      if (deadline.signal?.aborted) return expire(true)
      if (settled || wait.started) return
      deadline.signal?.addEventListener('abort', onAbort, { once: true })
      timer = this.clock.setTimeout(() => expire(false), Math.max(0, deadline.at - this.clock.now()))
    })
  }

  /** The Timeout of a request that waited for `waiting` until its deadline passed or its signal aborted. */
  #timeout(deadline: Deadline, waiting: Waiting, aborted: boolean): Timeout {
    const waitingFor = waiting.text
    const failed = aborted ? undefined : this.#failureOf(waiting)
    const why = failed === undefined ? '' : ` (the last open of its ${failed.role === 'primary' ? 'primary' : 'readers'} failed: ${failed.cause.message})`
    return new Timeout({
      shard: this.address.id,
      waitedFor: waitingFor,
      timeoutMs: deadline.timeoutMs,
      aborted,
      ...(failed === undefined ? {} : { cause: failed.cause }),
      message: aborted
        ? `request on shard ${this.address.id} aborted by its signal while it waited for ${waitingFor}${why}; it did not run`
        : `request on shard ${this.address.id} waited ${deadline.timeoutMs} ms for ${waitingFor}${why}; it did not run`,
    })
  }

  /** The error of a read whose token asks for sequence `need.seq` of a directory that holds sequence `held`. */
  #tokenAhead(need: Need, held: number): InvalidInput {
    return new InvalidInput({
      field: 'after',
      message: `after: the token asks for sequence ${need.seq} of shard ${this.address.id}, but its directory holds sequence ${held}: the token is not from this root, or its write was lost`,
    })
  }

  /**
   * Writer mode, while this index's primary holds the directory (no other process can write it then): a read whose
   * token is beyond the shard's sequence names a write the directory never had, and nothing would ever satisfy it.
   * Throws its InvalidInput. (While no primary holds it, another process may have written: the read waits for the
   * primary, which learns the sequence on disk, and is judged then: see publishPrimary.)
   */
  #assertNotAhead(need: Need): void {
    if (need.seq > this.seq && this.mode === 'writer' && this.primary !== undefined && !this.primary.faulted) throw this.#tokenAhead(need, this.seq)
  }

  /**
   * The last failed open that explains `waiting`: the primary's for a wait on the primary (to open, or to serve a
   * read), a reader's for a wait on a reader view; none for a wait on no open.
   */
  #failureOf(waiting: Waiting): OpenFailure | undefined {
    const failed = this.#openFailure
    return failed !== undefined && waiting.opens.includes(failed.role) ? failed : undefined
  }


  /** Admits one more read, or refuses it with Overloaded when `maxInflightReads` are running or waiting. */
  #admitRead(): void {
    this.#assertOpen()
    if (this.pendingReads >= this.limits.maxInflightReads) {
      // A scan waiting for its consumer keeps its place (and its view) until it ends: say so when some do.
      const parked = this.#parked.size
      const scans = parked === 0 ? '' : `; ${parked} of them scans waiting for their consumer, which hold their place until they end (finish them or call return())`
      throw new Overloaded({ shard: this.address.id, message: `shard ${this.address.id}: ${this.pendingReads} reads already in flight (queues.maxInflightReads)${scans}` })
    }
    this.pendingReads++
    this.inflight++
  }

  /**
   * Whether a handle is broken, after a read on it failed: a probe (one read of the shard's sequence key) tells a dead
   * handle from a failure of one read. Only a broken handle is restarted.
   */
  async #broken(record: LeaseRecord): Promise<boolean> {
    try {
      await record.handle.getMany([sequenceKey])
      return false
    } catch {
      return true
    }
  }

  /**
   * Flushes the primary's memtable if a record written at `olderThan` or before is still unflushed (the time
   * trigger, run by pool maintenance): begins in the write queue, between two writes. If only batches written during
   * the last flush are unflushed, a batch of the sequence and epoch alone comes first, so that the memtable holds a
   * solid epoch (see #startFlush).
   */
  flushIfOlder(olderThan: number): void {
    if (this.unflushed === 0 || this.firstUnflushedAt > olderThan || this.primary === undefined || this.closed || this.#flushing !== undefined) return
    // The handle is taken when the flush begins, not while it queues: a queued flush must not pin a primary that
    // failed meanwhile (its release waits for the requests on it, and the writes ahead wait for its successor).
    this.#writeChain = this.#writeChain.then(async () => {
      const record = this.primary
      if (record === undefined || record.faulted || this.unflushed === 0 || this.#flushing !== undefined) return
      if (!this.#solid) {
        record.inflight++
        try {
          const ops: WriteOp[] = []
          this.#epochTaken = true
          stampOps(ops, { seq: ++this.seq, epoch: this.epoch })
          await this.#recording(record).write(ops)
          this.ackSeq = this.seq
          this.#solid = true
        } catch (e) {
          if (e instanceof StorageFailure) this.fault(record, e)
          return
        } finally {
          this.table.finished(record)
        }
      }
      this.#startFlush(record)
    })
  }

  /** The records or bytes written since the last flush began reached a flush trigger. */
  #full(): boolean {
    return this.unflushed >= this.limits.flushEveryRecords || this.unflushedBytes >= this.limits.flushEveryBytes
  }

  /**
   * The memtable the running flush switches out, the batches written beside the flush and a write of `incoming`
   * records would hold more than twice a trigger: that write could find the memtable full (after a batch larger than
   * the buffer, say) and make RocksDB switch it by itself, which would leave a memtable with only a boundary epoch.
   */
  #overflowing(incoming: number): boolean {
    const { records, bytes } = this.#switchedOut
    return records + this.unflushed + incoming > 2 * this.limits.flushEveryRecords || bytes + this.unflushedBytes >= 2 * this.limits.flushEveryBytes
  }

  /**
   * Begins writing the memtable to a table file, so that a reader's open replays a short WAL, unless a flush runs
   * already or no solid batch was written since the last one began (the next write begins it then). Writes go on
   * beside the flush, stamping a boundary epoch; after it, a solid one (see {@link epoch} and src/views.ts): so the
   * memtable it switches out holds an epoch that no other memtable holds (its solid epoch), and so does the next one.
   * While it runs, a write waits for it once the memtable it switches out and the batches beside it hold twice a
   * trigger (see #overflowing): the memtable RocksDB writes to stays far below its size, and RocksDB never switches it
   * by itself, even after a batch larger than the buffer (every write after it waits for the flush). Counts as a request
   * on the shard and on the primary's handle until it ends (close waits for it; the handle stays open under it). A
   * failure is a fault of the primary, which reopens with a new epoch.
   */
  #startFlush(record: LeaseRecord): void {
    if (this.#flushing !== undefined || !this.#solid || record !== this.primary || record.faulted) return
    this.epoch++
    this.#epochTaken = false
    this.#solid = false
    this.#switchedOut = { records: this.unflushed, bytes: this.unflushedBytes }
    this.unflushed = 0
    this.unflushedBytes = 0
    this.inflight++
    record.inflight++
    this.#flushing = (async () => {
      try {
        await record.handle.flush()
      } catch (e) {
        if (e instanceof StorageFailure) this.fault(record, e)
      } finally {
        // The memtable switched (or the primary faulted, and its successor starts from the epochs on disk): the
        // batches from now on stamp a solid epoch, a new one if a batch took the boundary epoch.
        if (record === this.primary && this.#epochTaken) {
          this.epoch++
          this.#epochTaken = false
        }
        this.#flushing = undefined
        this.#flushesDone++
        this.table.finished(record)
        this.#done()
      }
    })()
  }

  /** Counts bytes a batch of the primary wrote, for the byte trigger of the flush. */
  wrote(bytes: number): void {
    this.unflushedBytes += bytes
  }

  /**
   * Runs `fn` on a handle that satisfies `need`: the least-loaded such reader, else (writer mode) the primary, else
   * (reader mode) the first reader a refresh makes fresh enough. With a `window` (`fn` reads only that time window of
   * one partition), a reader whose view is older than `need` also serves when no write after its view touched the
   * window (see #completedView; in reader mode, after one poll of the logs if need be). A storage failure is reported
   * once to the failing handle's actor and `fn` retried once elsewhere.
   */
  async read<T>(fn: (handle: StorageHandle) => Promise<T>, need: Need, deadline?: Deadline, window?: TimeWindow): Promise<T> {
    this.#assertNotAhead(need)
    // A signal aborted before the read began stops it before it runs, as it does a point read (a handle that serves
    // it now would otherwise start it before its deadline is looked at).
    if (deadline?.signal?.aborted === true) throw this.#timeout(deadline, this.#describeNeed(need), true)
    this.#admitRead()
    const wait = new Wait(() => this.#describeNeed(need))
    try {
      return await this.#bounded(deadline, wait, this.#readOnce(fn, need, wait, window, 0, true))
    } finally {
      this.pendingReads--
      this.#done()
    }
  }

  /**
   * Runs `fn` on a handle that serves `need` (see {@link read}), retried once elsewhere after a transient failure.
   * `slotted`: `fn` is a range read, which runs only with a place among the range reads running (see
   * maxRangeReads); its deadline bounds the wait for one.
   */
  async #readOnce<T>(fn: (handle: StorageHandle) => Promise<T>, need: Need, wait: Wait, window?: TimeWindow, first = 0, slotted = false): Promise<T> {
    for (let attempt = first; ; attempt++) {
      const found = this.#readerFor(need, window)
      const polled = found instanceof Promise ? await found : found
      // Expired while the logs were read: it does not go on to wait for a handle.
      if (wait.expired !== undefined) throw wait.expired
      let record = polled ?? (await this.#primaryFor('read', need, wait))
      // Counted on its handle from now on: the handle stays open while the read waits for a slot.
      record.inflight++
      let slot = false
      try {
        if (slotted) {
          const taken = rangeReads.take()
          if (taken !== undefined) {
            if (!wait.started) wait.waitingFor = waitingForRangeRead()
            await taken
          }
          slot = true
          const now = taken === undefined ? undefined : this.#readerAfterWait(record, need, window)
          if (now !== undefined) {
            this.table.finished(record)
            record = now
            record.inflight++
          }
        }
        if (!wait.started) wait.admit()
        if (record.role === 'primary') this.served.primary++
        else this.served.readers++
        return await fn(record.handle)
      } catch (e) {
        if (!(e instanceof StorageFailure)) throw e
        if (e.reason === 'corruption') throw this.#corruptRead(record, e)
        if (attempt >= 1 || this.closed || !isTransient(e)) throw this.#closedUnder(e)
        // One failed read is not a dead handle: only a handle that fails a probe too is restarted.
        if (await this.#broken(record)) this.fault(record, e)
      } finally {
        if (slot) rangeReads.done()
        record.lastUsedAt = this.clock.now()
        this.table.finished(record)
      }
    }
  }

  // ---- coalesced point reads ----

  /** Point reads issued since the last flush, in issue order (see {@link pointRead}). */
  #pointReads: PointRead[] = []
  #flushScheduled = false

  /**
   * Looks up one key, as `read` would with a one-key MultiGet, and answers `decode(context, value)` (`undefined` when
   * absent), but batched: the point reads of this shard issued during one turn of the event loop go out together as
   * one MultiGet per chunk of at most {@link maxChunk} keys, at the end of the turn; a read issued while none of this
   * shard's runs or waits goes out at once, alone (a lone caller waits for nothing). Each chunk is served by one
   * handle whose view satisfies the strictest need in it (every read's own need, then), the primary-only reads apart.
   * When no handle serves a whole chunk now, each read of it finds its own handle, or waits for one, as a lone read
   * does.
   *
   * Everything else is as for `read`: `Overloaded` at once beyond `maxInflightReads`; the deadline bounds the wait
   * until the read's MultiGet starts (a read that timed out never runs); a key on a corrupted block fails alone
   * (counted, the other keys are answered); a chunk that failed otherwise makes the shard probe its handle (only a
   * broken handle is faulted) and its reads are retried once. Throws (Overloaded, Closed, InvalidInput for a token
   * beyond the shard's sequence) synchronously.
   */
  pointRead<C, T>(key: Uint8Array, decode: (context: C, value: Uint8Array) => T, context: C, need: Need, deadline: Deadline): Promise<T | undefined> {
    this.#assertNotAhead(need)
    this.#admitRead()
    return new Promise<T | undefined>((resolve, reject) => {
      const read: PointRead = {
        key,
        need,
        deadline,
        decode: decode as (context: unknown, value: Uint8Array) => unknown,
        context,
        resolve: resolve as (value: unknown) => void,
        reject,
        attempt: 0,
        started: false,
        settled: false,
      }
      if (this.#pointReadsOut === 0 && !this.#flushScheduled && goesAtOnce()) {
        // Nothing to share a MultiGet with: a lone read goes out at once.
        const lone = [read]
        try {
          this.#sendPointReads(lone)
        } catch (e) {
          this.#settlePoint(read, false, e)
        }
        return
      }
      this.#pointReads.push(read)
      if (!this.#flushScheduled) {
        this.#flushScheduled = true
        awaitTurn(this)
      }
    })
  }

  /** Point reads of this shard whose MultiGet runs now. */
  #pointReadsOut = 0

  /** Sends the point reads issued since the last flush. */
  /**
   * Sends at most `budget` of the point reads waiting (the oldest first), when the turn of this shard comes; with
   * reads left, the shard waits for another turn. Returns how many were sent. (Called by the turn scheduler.)
   */
  sendWaiting(budget: number): number {
    let reads = this.#pointReads
    if (reads.length > budget) {
      this.#pointReads = reads.slice(budget)
      reads = reads.slice(0, budget)
      awaitTurn(this)
    } else {
      this.#pointReads = []
      this.#flushScheduled = false
    }
    const sent = reads.length
    this.#guarded(reads.slice(), () => this.#sendPointReads(reads))
    return sent
  }

  /**
   * Runs `fn`, which routes or answers `reads`. Should it throw (a bug), each read of `reads` not answered yet fails
   * with that error rather than wait forever (one answered later is not answered again).
   */
  #guarded(reads: readonly PointRead[], fn: () => void): void {
    try {
      fn()
    } catch (e) {
      for (const r of reads) this.#settlePoint(r, false, e)
    }
  }

  /** Sends point reads that have not started: each whose deadline passed fails with Timeout instead. */
  #sendPointReads(reads: PointRead[], polled = false): void {
    const now = this.clock.now()
    let live = 0
    let primaryOnly = 0
    for (const r of reads) {
      // Not started yet: its deadline still holds.
      const aborted = r.deadline.signal?.aborted === true
      if (!r.started && (aborted || now >= r.deadline.at)) {
        this.#settlePoint(r, false, this.#timeout(r.deadline, this.#describeNeed(r.need), aborted))
        continue
      }
      reads[live++] = r
      if (r.need.primary) primaryOnly++
    }
    reads.length = live
    if (primaryOnly === 0 || primaryOnly === live) this.#routePoints(reads, polled)
    else {
      this.#routePoints(reads.filter((r) => !r.need.primary), polled)
      this.#routePoints(reads.filter((r) => r.need.primary), polled)
    }
  }

  /**
   * Sends `reads` (all primary-only, or none) in chunks, each to a handle that serves it now, or to a wait. In reader
   * mode, a chunk that no view serves goes first to a poll of the logs (unless `polled`: it comes from one), which may
   * let a view merged with what the poll read serve it; only what that does not serve waits for a refresh.
   */
  #routePoints(reads: PointRead[], polled = false): void {
    const size = Math.min(maxChunk, turnSize())
    for (let i = 0; i < reads.length; i += size) {
      const chunk = reads.length <= size ? reads : reads.slice(i, i + size)
      const need = this.#strictest(chunk)
      // A reader whose view the memory of recent writes completes serves point reads as well as a fresh one: a stale
      // reader is asked to refresh (which also prunes the memory) only when there is none, or when the memory has
      // grown past a quarter of its bound. Refreshing on every read that outruns the views would reopen the readers
      // back to back under a steady writer, each open replaying the WAL into a cold instance.
      const merging = this.#mergingReader(need)
      const tailing = !polled && merging === undefined && this.#tailCouldServe(need)
      const record = this.#freshReader(need, chunk.length, !tailing && (merging === undefined || this.#memoryPressed()))
      if (record !== undefined) {
        this.#multiGet(record, chunk, false)
        continue
      }
      if (tailing) {
        this.#awaitTail(chunk)
        continue
      }
      // No view satisfies the chunk on its own: one the memory of recent writes completes, else the primary.
      const other = merging ?? this.#readyPrimary()
      if (other !== undefined) {
        this.#multiGet(other, chunk, other.role === 'reader')
        continue
      }
      // No handle serves the whole chunk now: each read finds its own, as a lone read does, or waits for one.
      const groups = new Map<LeaseRecord, PointRead[]>()
      for (const r of chunk) {
        const own = this.#freshReader(r.need)
        if (own === undefined) this.#waitForHandle(r)
        else {
          const group = groups.get(own)
          if (group === undefined) groups.set(own, [r])
          else group.push(r)
        }
      }
      for (const [own, group] of groups) this.#multiGet(own, group, false)
    }
  }

  /**
   * The strictest of the needs of `chunk`: a view that satisfies it satisfies every read of the chunk. Reads of the
   * same route often share their need (see the index's default needs): then it is that need, and nothing is made.
   */
  #strictest(chunk: readonly PointRead[]): Need {
    const first = chunk[0]!.need
    let seq = first.seq
    let since = first.since
    let primary = first.primary === true
    let same = true
    for (let i = 1; i < chunk.length; i++) {
      const need = chunk[i]!.need
      if (need === first) continue
      same = false
      if (need.seq > seq) seq = need.seq
      if (need.since !== undefined && (since === undefined || need.since > since)) since = need.since
      if (need.primary) primary = true
    }
    if (same) return first
    return primary ? { seq, primary } : since === undefined ? { seq } : { seq, since }
  }

  /**
   * Writer mode: the least-loaded serving reader whose view the memory of recent writes completes (its view is at or
   * above the memory's floor): merged with that memory, it answers any point read but a primary-only one as the
   * primary would. `undefined` when there is none, or no such memory, or while this index's primary does not hold
   * the directory (it failed, backs off, or another instance took the lock): another instance may write then, and
   * the memory no longer completes a view. (When the primary opens again, the memory starts over from what is on
   * disk: see publishPrimary.)
   */
  #mergingReader(need: Need): LeaseRecord | undefined {
    const recent = this.recent
    if (recent === undefined || !this.#memoryCompletes(need)) return undefined
    let best: LeaseRecord | undefined
    for (const r of this.readers.values()) {
      if (!r.faulted && r.seq >= recent.floor && (best === undefined || r.inflight < best.inflight)) best = r
    }
    return best
  }

  /**
   * Whether the memory of recent writes completes a view at or above its floor for a read of `need`: it holds every
   * write after the floor that `need` must see. Writer mode: while this index's primary holds the directory (see
   * #mergingReader). Reader mode: up to what the logs fed (#tailTop), which holds every write acknowledged before
   * #tailAt.
   */
  #memoryCompletes(need: Need): boolean {
    if (this.recent === undefined || need.primary) return false
    if (this.mode === 'reader') return this.#tailTop !== 0 && need.seq <= this.#tailTop && (need.since === undefined || this.#tailAt >= need.since)
    return this.primary !== undefined && !this.primary.faulted
  }

  /**
   * A reader to run a read of `need` on now, if any (else the caller waits for the primary or for a refresh): one
   * whose view satisfies it; else, for a read of a time `window`, a view that holds the window as it is now (see
   * #completedView), which then serves it as the primary would, without a refresh. In reader mode, when neither
   * serves, a poll of the logs (one that begins after this call) may let a view do: the answer is then a promise of
   * the same choice made after that poll.
   */
  #readerFor(need: Need, window: TimeWindow | undefined, polled = false): LeaseRecord | undefined | Promise<LeaseRecord | undefined> {
    if (window === undefined) return this.#freshReader(need)
    const newest = this.#completedView(need)
    const keeper = newest !== undefined && !this.recent!.touchesTimes(window.partition, window.from, window.to, newest.seq) ? newest : undefined
    const tailing = !polled && keeper === undefined && this.#tailCouldServe(need)
    // A stale reader is asked to refresh when no view serves this read (the primary answers it meanwhile, in writer
    // mode: the next read of a window written since finds a view that holds it), or, as for point reads, when the
    // memory grew large. (Refreshing only under memory pressure, as point reads do, made no difference to the reader
    // opens under a steady writer, bench/placement.ts, and left a light writer's newest windows to the primary.)
    const refresh = !tailing && (keeper === undefined || this.#memoryPressed())
    const record = this.#freshReader(need, 1, refresh) ?? keeper
    if (record !== undefined || !tailing) return record
    return new Promise<void>((resolve) => this.#awaitTail([resolve])).then(() => this.#readerFor(need, window, true))
  }

  /**
   * For a range read or scan routed to `record` that then waited for its place: a reader that serves it now, if
   * `record` is the primary and the read need not be (else `undefined`: it stays where it is). Without it, 1,000
   * scans issued at once under a writer all went to the primary and stayed there while they waited their turn,
   * though the readers' views moved past the writes meanwhile. Only a reader that serves at once: no poll of the
   * logs or refresh is waited for while the read holds a place.
   */
  #readerAfterWait(record: LeaseRecord, need: Need, window: TimeWindow | undefined): LeaseRecord | undefined {
    if (record.role !== 'primary' || need.primary || this.closed) return undefined
    const now = this.#readerFor(need, window, true)
    return now instanceof Promise ? undefined : now
  }

  /**
   * The newest serving reader whose view the memory of recent writes completes for `need` (see #memoryCompletes).
   * It serves a read of a time window when no write after its view touched the window (`RecentWrites.touchesTimes`):
   * it then holds the window's entries as they are now. The newest view is the one the fewest writes came after: when
   * one of them touched the window, so did one after any older view.
   */
  #completedView(need: Need): LeaseRecord | undefined {
    const recent = this.recent
    if (recent === undefined || !this.#memoryCompletes(need)) return undefined
    let newest: LeaseRecord | undefined
    for (const r of this.readers.values()) {
      // (The spans of timestamps outlive the keys: a view older than the keys' floor may still answer for windows.)
      if (r.faulted || r.seq < recent.timesFloor) continue
      if (newest === undefined || r.seq > newest.seq || (r.seq === newest.seq && r.inflight < newest.inflight)) newest = r
    }
    return newest
  }

  /** Reader mode: a poll of the logs could let a view serve a read of `need` (there is a view to merge with). */
  #tailCouldServe(need: Need): boolean {
    if (this.#tail === undefined || need.primary || this.closed) return false
    for (const r of this.readers.values()) if (!r.faulted) return true
    return false
  }

  /**
   * Reader mode: `reads` wait for a poll of the logs that begins after they came (then point reads are routed again,
   * and the other waiters called).
   */
  #awaitTail(reads: readonly TailWaiter[]): void {
    if (this.#tailPolling !== undefined) {
      for (const r of reads) this.#tailNext.push(r)
      return
    }
    this.#tailPolling = [...reads]
    this.#pollTail()
  }

  #pollTail(): void {
    const tail = this.#tail!
    const startedAt = this.clock.now()
    const stop = (): void => {
      // Nothing is merged until a poll succeeds again, from the logs' start.
      this.#tailTop = 0
      this.#tailAt = Number.NEGATIVE_INFINITY
      tail.restart()
    }
    tail
      .poll()
      .then(
        (read) => {
          try {
            this.#fedTail(read, startedAt)
          } catch {
            stop()
          }
        },
        // The directory could not be listed, or a log read failed.
        stop,
      )
      .finally(() => {
        const reads = this.#tailPolling ?? []
        this.#tailPolling = undefined
        if (this.#tailNext.length > 0) {
          const next = this.#tailNext
          this.#tailNext = []
          this.#awaitTail(next)
        }
        const waiting: PointRead[] = []
        for (const r of reads) {
          if (typeof r === 'function') r()
          else if (!r.settled) waiting.push(r)
        }
        this.#guarded(waiting, () => this.#sendPointReads(waiting, true))
      })
  }

  /**
   * Feeds what a poll read into the memory: batches in sequence order extend it; a batch after a gap (a log deleted
   * before it was read to its end, the tail starting over) starts it over at that batch, so that only views holding
   * everything before it are merged; a sequence that goes back (another history: the logs were replaced) or anything
   * the tail could not use stops the merging until the tail has read the logs again from their start.
   */
  #fedTail(read: TailRead, startedAt: number): void {
    const recent = this.recent!
    if (read.fresh) {
      // The memory starts over: what an earlier read of the logs vouched for no longer holds.
      this.#tailTop = 0
      this.#tailAt = Number.NEGATIVE_INFINITY
    }
    for (const b of read.batches) {
      if (this.#tailTop !== 0 && b.seq <= this.#tailTop) {
        this.#tailTop = 0
        this.#tailAt = Number.NEGATIVE_INFINITY
        this.#tail!.restart()
        return
      }
      if (this.#tailTop === 0 || b.seq !== this.#tailTop + 1) recent.reset(b.seq - 1)
      recent.record(b.ops, b.seq)
      this.#tailTop = b.seq
    }
    if (read.unusable !== undefined) {
      this.#tailTop = 0
      this.#tailAt = Number.NEGATIVE_INFINITY
      return
    }
    // Everything written before the poll began was read, unless a log may have come and gone unseen (the batches
    // read are whole up to #tailTop all the same: `after` a token up to it still merges).
    if (read.complete) this.#tailAt = startedAt
    this.#pruneRecent()
  }

  /** The memory of recent writes holds more than a quarter of its bound: the readers' views should move on. */
  #memoryPressed(): boolean {
    const recent = this.recent
    return recent !== undefined && recent.bytes * 4 >= recent.maxBytes
  }

  /** In writer mode, the primary if it is ready: it serves any read at once (see {@link #primaryFor}). */
  #readyPrimary(): LeaseRecord | undefined {
    return this.mode === 'writer' && this.primary !== undefined && !this.primary.faulted ? this.primary : undefined
  }

  /**
   * Runs one MultiGet of `reads` on `record` (which serves each of them), and answers them key by key. `merge`: the
   * reader's view does not satisfy them on its own, but the memory of recent writes completes it (see
   * #mergingReader): a key written after the view was taken is answered from that memory.
   */
  #multiGet(record: LeaseRecord, reads: PointRead[], merge: boolean): void {
    const recent = this.recent
    if (record.role === 'reader' && merge && recent !== undefined && !recent.empty) {
      // A key written after the reader's view was taken is answered from memory, as of now; the others by the view.
      let kept = 0
      for (let i = 0; i < reads.length; i++) {
        const r = reads[i]!
        const newer = recent.newer(r.key, record.seq)
        if (newer === undefined) {
          reads[kept++] = r
          continue
        }
        r.started = true
        this.served.memory++
        let decoded: unknown
        try {
          decoded = newer.value === undefined ? undefined : r.decode(r.context, newer.value)
        } catch (e) {
          this.#settlePoint(r, false, e)
          continue
        }
        this.#settlePoint(r, true, decoded)
      }
      reads.length = kept
      if (kept === 0) return
    }
    if (multiGetsOut >= multiGetsAllowed()) {
      // libuv's pool is busy enough with point reads (or a write waits): these wait for a MultiGet to finish (see
      // maxMultiGetsOut and maxMultiGetsOutBesideWrites).
      this.#deferPointReads(reads)
      return
    }
    if (record.role === 'primary') this.served.primary += reads.length
    else this.served.readers += reads.length
    const n = reads.length
    const keys: Uint8Array[] = new Array(n)
    for (let i = 0; i < n; i++) {
      const r = reads[i]!
      r.started = true
      keys[i] = r.key
    }
    record.inflight += n
    this.#pointReadsOut += n
    multiGetsOut++
    let call: Promise<SettledValues>
    try {
      call = getManySettled(record.handle, keys)
    } catch (e) {
      call = Promise.reject(e)
    }
    call.finally(multiGetDone).then(
      (result) => this.#guarded(reads, () => this.#answer(record, reads, result, undefined)),
      (e: unknown) => this.#guarded(reads, () => this.#answer(record, reads, undefined, e)),
    )
  }

  /**
   * Answers the reads of one MultiGet on `record`: each key's value, or its failure (`failure`: the call failed as a
   * whole, for every key). A corrupted key fails alone; transient failures are retried once, after a probe of the
   * handle (a broken handle is faulted first).
   */
  #answer(record: LeaseRecord, reads: PointRead[], result: SettledValues | undefined, failure: unknown): void {
    const n = reads.length
    this.#pointReadsOut -= n
    if (result !== undefined && result.errors === undefined) {
      // Every key answered (the common case).
      this.#release(record, n)
      const values = result.values
      for (let i = 0; i < n; i++) {
        const r = reads[i]!
        const value = values[i]
        let decoded: unknown
        try {
          decoded = value === undefined ? undefined : r.decode(r.context, value)
        } catch (e) {
          this.#settlePoint(r, false, this.#corruptRead(record, damagedEntry(record.handle.path, e)))
          continue
        }
        this.#settlePoint(r, true, decoded)
      }
      return
    }
    const outcomes: unknown[] = new Array(n)
    const ok: boolean[] = new Array(n)
    let retry: PointRead[] | undefined
    let cause: StorageFailure | undefined
    for (let i = 0; i < n; i++) {
      const r = reads[i]!
      const e = result === undefined ? failure : result.errors?.[i]
      if (result !== undefined && (result.errors === undefined || e === undefined)) {
        const value = result.values[i]
        try {
          outcomes[i] = value === undefined ? undefined : r.decode(r.context, value)
          ok[i] = true
        } catch (x) {
          outcomes[i] = this.#corruptRead(record, damagedEntry(record.handle.path, x))
          ok[i] = false
        }
      } else if (!(e instanceof StorageFailure)) {
        outcomes[i] = e
        ok[i] = false
      } else if (e.reason === 'corruption') {
        outcomes[i] = this.#corruptRead(record, e)
        ok[i] = false
      } else if (r.attempt >= 1 || this.closed || !isTransient(e)) {
        outcomes[i] = this.#closedUnder(e)
        ok[i] = false
      } else {
        ;(retry ??= []).push(r)
        cause ??= e
      }
    }
    const retried = retry?.length ?? 0
    this.#release(record, n - retried)
    for (let i = 0; i < n; i++) if (ok[i] !== undefined) this.#settlePoint(reads[i]!, ok[i]!, outcomes[i])
    if (retry === undefined) return
    const again = retry
    // One failed read is not a dead handle: only a handle that fails a probe too is restarted.
    void this.#broken(record).then((broken) =>
      this.#guarded(again, () => {
        if (broken) this.fault(record, cause!)
        this.#release(record, retried)
        for (const r of again) r.attempt = 1
        this.#routePoints(again)
      }),
    )
  }

  /**
   * Point reads routed while {@link maxMultiGetsOut} MultiGets run: they wait, apart from the reads issued since
   * (which may be answered from memory meanwhile), and are routed anew, the oldest first, as MultiGets finish (see
   * `sendDeferred`). They have not started: their deadlines still hold.
   */
  #deferPointReads(reads: readonly PointRead[]): void {
    let at = Infinity
    for (const r of reads) {
      this.#deferred.push(r)
      if (r.started) continue
      if (r.deadline.at < at) at = r.deadline.at
      // Its signal ends the wait at once, even should no MultiGet finish (a stuck disk); the listener goes when the
      // read leaves the wait (see #undefer).
      const signal = r.deadline.signal
      if (signal !== undefined && r.onAbort === undefined) {
        r.onAbort = () => this.#failAbortedDeferred()
        signal.addEventListener('abort', r.onAbort, { once: true })
      }
    }
    waitingForMultiGet.add(this)
    this.#expireDeferredAt(at)
  }

  /** `r` leaves the reads waiting for a MultiGet: its signal's listener goes. */
  #undefer(r: PointRead): void {
    if (r.onAbort === undefined) return
    r.deadline.signal?.removeEventListener('abort', r.onAbort)
    r.onAbort = undefined
  }

  /** Point reads waiting for a MultiGet to finish (see #deferPointReads). */
  #deferred: PointRead[] = []

  /** The timer that fails deferred reads whose deadline passed, and when it fires (Infinity: none armed). */
  #deferredTimer: unknown
  #deferredTimerAt = Infinity

  /**
   * Arms the timer of the deferred reads for `at` unless it fires sooner already: a deferred read waits for a
   * MultiGet to finish, and should none finish (a stuck disk), its deadline still fails it on time. (An aborted
   * signal fails it at once: see #deferPointReads.)
   */
  #expireDeferredAt(at: number): void {
    if (at === Infinity || at >= this.#deferredTimerAt) return
    if (this.#deferredTimer !== undefined) this.clock.clearTimeout(this.#deferredTimer)
    this.#deferredTimerAt = at
    this.#deferredTimer = this.clock.setTimeout(
      () => {
        this.#deferredTimer = undefined
        this.#deferredTimerAt = Infinity
        this.#guarded(this.#deferred.slice(), () => this.#expireDeferred())
      },
      Math.max(0, at - this.clock.now()),
    )
  }

  /** Fails the deferred reads whose deadline passed with Timeout; arms the timer for the next deadline. */
  #expireDeferred(): void {
    const now = this.clock.now()
    const kept: PointRead[] = []
    let next = Infinity
    for (const r of this.#deferred) {
      if (r.started || now < r.deadline.at) {
        kept.push(r)
        if (!r.started && r.deadline.at < next) next = r.deadline.at
      } else {
        this.#settlePoint(r, false, this.#timeout(r.deadline, waitingForAMultiGet, false))
      }
    }
    this.#deferred = kept
    this.#expireDeferredAt(next)
  }

  /**
   * A MultiGet finished: the oldest reads deferred for want of one are routed again, as many as the MultiGets free now
   * take (a chunk each); the others keep waiting, as they are (one whose deadline passed or whose signal aborted
   * fails on its own: the timer, the signal's listener).
   * (Routing every waiting read after every MultiGet, to defer most of them again, took a sixth of the main thread
   * under 1,000 `fresh` callers and a writer: bench/placement.ts, BENCHMARKS.md.) When none is free, the shard waits
   * for the next MultiGet to finish.
   */
  sendDeferred(): void {
    // Reads routed elsewhere (answered from memory, to a wait for a handle, timed out) start no MultiGet: the next
    // ones go too, until the free MultiGets are taken (then a MultiGet runs, whose end sends the rest) or none waits.
    // (Reads deferred again meanwhile mean that none is free: the loop ends.)
    while (this.#deferred.length > 0) {
      const free = multiGetsAllowed() - multiGetsOut
      if (free <= 0) {
        waitingForMultiGet.add(this)
        return
      }
      // The oldest reads, of the oldest one's kind only (primary-only or not: the two kinds go out apart, and the
      // other kind, routed first, would take the MultiGet ahead of it every time).
      const deferred = this.#deferred
      const primary = deferred[0]!.need.primary === true
      const most = Math.min(deferred.length, free * Math.min(maxChunk, turnSize()))
      let n = 1
      while (n < most && (deferred[n]!.need.primary === true) === primary) n++
      const rest = deferred.slice(n)
      const now = this.clock.now()
      const reads: PointRead[] = []
      const expired: PointRead[] = []
      for (let i = 0; i < n; i++) {
        const r = deferred[i]!
        this.#undefer(r)
        if (!r.started && (r.deadline.signal?.aborted === true || now >= r.deadline.at)) expired.push(r)
        else reads.push(r)
      }
      this.#deferred = []
      // The timer stays armed: under load reads are deferred again at once, and rearming it after every MultiGet
      // cost the main thread more than a timer that fires for nothing (it finds nothing due and rearms for what
      // still waits). It goes when the shard has nothing in flight (see #done).
      this.#guarded(expired, () => {
        for (const r of expired) this.#settlePoint(r, false, this.#timeout(r.deadline, waitingForAMultiGet, r.deadline.signal?.aborted === true))
      })
      this.#guarded(reads.slice(), () => this.#sendPointReads(reads))
      // Reads deferred again (none is free now) keep their place: ahead of the ones still waiting.
      this.#deferred = this.#deferred.length === 0 ? rest : this.#deferred.concat(rest)
    }
  }

  /** Fails the deferred reads whose signal aborted (their deadlines are the timer's), keeping the others in order. */
  #failAbortedDeferred(): void {
    const deferred = this.#deferred
    let i = 0
    while (i < deferred.length && deferred[i]!.deadline.signal?.aborted !== true) i++
    if (i === deferred.length) return
    const kept = deferred.slice(0, i)
    const aborted: PointRead[] = []
    for (; i < deferred.length; i++) {
      const r = deferred[i]!
      if (!r.started && r.deadline.signal?.aborted === true) {
        this.#undefer(r)
        aborted.push(r)
      } else kept.push(r)
    }
    this.#deferred = kept
    this.#guarded(aborted, () => {
      for (const r of aborted) this.#settlePoint(r, false, this.#timeout(r.deadline, waitingForAMultiGet, true))
    })
  }

  /** Disarms the timer of the deferred reads (none waits). A clock is only given back the handles it made. */
  #clearDeferredTimer(): void {
    if (this.#deferredTimer === undefined) return
    this.clock.clearTimeout(this.#deferredTimer)
    this.#deferredTimer = undefined
    this.#deferredTimerAt = Infinity
  }

  /** `n` reads on `record` finished. */
  #release(record: LeaseRecord, n: number): void {
    if (n === 0) return
    record.lastUsedAt = this.clock.now()
    record.inflight -= n - 1
    this.table.finished(record)
  }

  /**
   * A point read that no handle serves now waits for one as a lone read does (its deadline bounding the wait); a
   * retried read has started already, and is no longer bound by its deadline.
   */
  #waitForHandle(r: PointRead): void {
    const wait = new Wait(() => this.#describeNeed(r.need))
    if (r.started) wait.started = true
    const work = this.#readOnce(
      async (handle) => {
        const [value] = await handle.getMany([r.key])
        if (value === undefined) return undefined
        try {
          return r.decode(r.context, value)
        } catch (e) {
          throw damagedEntry(handle.path, e)
        }
      },
      r.need,
      wait,
      undefined,
      r.attempt,
    )
    this.#bounded(r.started ? undefined : r.deadline, wait, work).then(
      (value) => this.#settlePoint(r, true, value),
      (e: unknown) => this.#settlePoint(r, false, e),
    )
  }

  /** A point read is answered (`ok`) or failed: it leaves the reads in flight. Only the first outcome counts. */
  #settlePoint(r: PointRead, ok: boolean, outcome: unknown): void {
    if (r.settled) return
    r.settled = true
    this.#undefer(r)
    this.pendingReads--
    this.#done()
    if (ok) r.resolve(outcome)
    else r.reject(outcome)
  }

  /** What a read that needs `need` waits for, in words (for a Timeout). */
  #describeNeed(need: Need): Waiting {
    const id = this.address.id
    if (need.primary) return this.#waitingForPrimary()
    const newest = Math.max(-1, ...[...this.readers.values()].map((r) => r.seq))
    const view = `a reader view of shard ${id} at sequence >= ${need.seq}${need.since === undefined ? '' : ` taken at or after ${need.since}`} (newest view: ${newest < 0 ? 'none open' : newest})`
    return this.mode === 'reader' ? { text: view, opens: ['reader'] } : { text: `${view}, or the primary of shard ${id}`, opens: ['reader', 'primary'] }
  }

  /** A wait for the primary to open (a write's, or a read only the primary serves). */
  #waitingForPrimary(): Waiting {
    return { text: `the primary of shard ${this.address.id} to open`, opens: ['primary'] }
  }

  /**
   * Streams the entries of `fn`'s chunks one by one from a handle that satisfies `need` (as {@link read}, `window`
   * too), holding the handle until the stream ends or the consumer stops. A failure before the first entry is retried
   * once elsewhere; later failures are thrown.
   */
  async *stream<T>(fn: (handle: StorageHandle) => AsyncIterable<readonly T[]>, need: Need, deadline?: Deadline, window?: TimeWindow): AsyncGenerator<T> {
    this.#assertNotAhead(need)
    if (deadline?.signal?.aborted === true) throw this.#timeout(deadline, this.#describeNeed(need), true)
    this.#admitRead()
    const wait = new Wait(() => this.#describeNeed(need))
    try {
      for (let attempt = 0; ; attempt++) {
        const found = this.#readerFor(need, window)
        let record =
          (found instanceof Promise ? await this.#bounded(deadline, wait, found) : found) ??
          (await this.#bounded(deadline, wait, Promise.resolve(this.#primaryFor('read', need, wait))))
        // Counted on its handle from now on (released with `hold`): the handle stays open while the scan waits for a
        // place.
        record.inflight++
        let hold = this.#streamHold(record)
        let yielded = false
        try {
          // The place of its first read, within its deadline (each step of the scan runs with one: see below).
          const first = scanStepPlace()
          if (first !== undefined) {
            if (!wait.started) wait.waitingFor = waitingForRangeRead()
            try {
              await this.#bounded(deadline, wait, first)
            } catch (e) {
              // Expired: the places handed to it later go back.
              void first.then(scanStepDone)
              throw e
            }
            const now = this.#readerAfterWait(record, need, window)
            if (now !== undefined) {
              hold.release()
              record = now
              record.inflight++
              hold = this.#streamHold(record)
            }
          }
          try {
            if (!wait.started) wait.admit()
          } catch (e) {
            scanStepDone()
            throw e
          }
          if (record.role === 'primary') this.served.primary++
          else this.served.readers++
          // Each step of the scan (a chunk: one read into libuv's pool, or entries read ahead already) runs with a
          // place among the range reads (see maxRangeReads): it takes one only while it reads, never while its
          // consumer holds an entry. The first step's place is taken already.
          const chunks = fn(record.handle)[Symbol.asyncIterator]()
          let done = false
          try {
            for (let steps = 0; ; steps++) {
              if (steps > 0) {
                const taken = scanStepPlace()
                if (taken !== undefined) await taken
              }
              let step: IteratorResult<readonly T[]>
              try {
                step = await chunks.next()
              } finally {
                scanStepDone()
              }
              if (step.done === true) {
                done = true
                break
              }
              if (step.value.length === 0) continue
              yielded = true
              // Between two entries the stream waits for its consumer (see #park): the entries of a chunk are in
              // hand, and a shard closed meanwhile ends the stream at its consumer's next `next()` all the same.
              this.#park(hold)
              try {
                for (const entry of step.value) {
                  yield entry
                  if (hold.released) throw this.#ended()
                }
              } finally {
                this.#unpark(hold)
              }
            }
          } finally {
            // Stopped early (its consumer stopped, or a read failed): the chunks' iterator is released too.
            if (!done) await chunks.return?.()
          }
          return
        } catch (e) {
          if (!(e instanceof StorageFailure)) throw e
          if (e.reason === 'corruption') throw this.#corruptRead(record, e)
          if (yielded || attempt >= 1 || this.closed || !isTransient(e)) throw this.#closedUnder(e)
          if (await this.#broken(record)) this.fault(record, e)
        } finally {
          hold.release()
        }
      }
    } finally {
      this.pendingReads--
      this.#done()
    }
  }

  /** Streams waiting for their consumer between two entries (see {@link #park}). */
  readonly #parked = new Set<StreamHold>()

  /** A stream's claim on its handle (one of its record's `inflight`), given back exactly once. */
  #streamHold(record: LeaseRecord): StreamHold {
    let released = false
    return {
      get released() {
        return released
      },
      release: () => {
        if (released) return
        released = true
        record.lastUsedAt = this.clock.now()
        this.table.finished(record)
      },
    }
  }

  /**
   * A stream hands an entry to its consumer. Until the consumer asks for the next one the stream is the consumer's,
   * not work in flight: the shard does not count it (`idle()` and so `close()` do not wait for it), but it keeps its
   * handle, so that a refresh or a retirement lets it finish on its own view. Once the shard is closed
   * ({@link endStreams}) it ends: its handle is given back at once and its next `next()` rejects with Closed.
   */
  #park(hold: StreamHold): void {
    this.#parked.add(hold)
    this.#done()
    if (this.closed) hold.release()
  }

  /** The consumer came back, for the next entry or to stop: the stream is work in flight again. */
  #unpark(hold: StreamHold): void {
    this.#parked.delete(hold)
    this.inflight++
  }

  /**
   * The failure of a read that ran while the index closed: a transient failure then is the close releasing the
   * read's handle under it (it outlasted closeTimeoutMs), so it is Closed, naming what the handle said; any other
   * failure is itself.
   */
  #closedUnder(e: StorageFailure): StorageFailure | Closed {
    if (!this.closed || !isTransient(e)) return e
    return new Closed({ message: `shard ${this.address.id} is closed: the index closed while this read ran, and released its handle (${e.message})` })
  }

  /** What a stream ended by the close throws when its consumer asks for the next entry. */
  #ended(): Closed {
    return new Closed({ message: `shard ${this.address.id} is closed: the index closed while this scan waited for its consumer` })
  }

  /**
   * The index is closing: every stream waiting for its consumer gives its handle back now (so that closing the
   * handles does not wait for consumers that may never come back); its next `next()` rejects with Closed. Call after
   * {@link stop}.
   */
  endStreams(): void {
    for (const hold of this.#parked) hold.release()
  }

  /**
   * A read met a corrupted block. That read fails, but the handle is not dead: other keys keep being served from it,
   * so nothing restarts. Counted, announced, and returned with the shard named.
   */
  #corruptRead(record: LeaseRecord, e: StorageFailure): StorageFailure {
    this.integrity.corruptReads++
    const actor = record.readerId ?? 'primary'
    this.report({ type: 'corruption', shard: this.address.id, actor, detail: e.message })
    return new StorageFailure({
      reason: 'corruption',
      path: e.path,
      shard: this.address.id,
      cause: e.cause,
      message: `corrupted data in shard ${this.address.id} (${e.path}), read through ${actor}: ${e.message}. The read failed; other keys are still served. See README, Repairing a damaged shard`,
    })
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

  /**
   * The least-loaded serving reader that satisfies `need`; asks for a refresh or more readers as needed. `incoming`:
   * how many reads the caller routes now (a coalesced chunk), counted with the reads in flight for the pool's growth;
   * `refresh`: false when the caller has another way to serve them (no refresh is asked then).
   */
  #freshReader(need: Need, incoming = 1, refresh = true): LeaseRecord | undefined {
    if (need.primary) return undefined
    let best: LeaseRecord | undefined
    let stale: LeaseRecord | undefined
    let load = incoming - 1
    for (const [readerId, r] of this.readers) {
      load += r.inflight
      if (r.faulted) continue
      if (satisfies(r, need)) {
        if (best === undefined || r.inflight < best.inflight) best = r
      } else if (!this.refreshing.has(readerId) && !this.cooling.has(readerId) && (stale === undefined || r.seq < stale.seq || (r.seq === stale.seq && r.openedAt < stale.openedAt))) {
        stale = r
      }
    }
    if (refresh && stale !== undefined && this.refreshing.size < this.limits.refreshesPerShard) {
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
  #primaryFor(kind: 'read' | 'write', need: Need, wait?: Wait): Promise<LeaseRecord> | LeaseRecord {
    if (this.mode === 'writer' && this.primary !== undefined && !this.primary.faulted) return this.primary
    // A request accepted before the index began closing waits for a primary that is opening (see stop).
    if (!this.#primaryOpening) this.#assertOpen()
    if (this.mode === 'reader') {
      if (this.degraded) throw this.#unavailable()
    } else if (this.locked !== undefined && (kind === 'write' || !this.#readerCouldServe(need))) throw this.locked
    else if (this.exhausted && (kind === 'write' || !this.#readerCouldServe(need))) throw this.#unavailable()
    const queued = this.#waiters.filter((w) => w.kind === kind).length
    if (kind === 'read' && queued >= this.limits.maxPendingReads) {
      throw new Overloaded({ shard: this.address.id, message: `shard ${this.address.id}: ${queued} reads already wait for a handle` })
    }
    if (wait !== undefined && !wait.started) wait.waitingFor = kind === 'write' ? this.#waitingForPrimary() : this.#describeNeed(need)
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        kind,
        need,
        ticket: this.table.ticket(),
        wait,
        shortViews: 0,
        resolve: (r) => {
          if (wait !== undefined) wait.cancel = undefined
          resolve(r)
        },
        reject: (e) => {
          if (wait !== undefined) wait.cancel = undefined
          reject(e)
        },
      }
      // The request's deadline takes it out of the queue.
      if (wait !== undefined) {
        wait.cancel = () => {
          this.#waiters = this.#waiters.filter((w) => w !== waiter)
          waiter.reject(wait.expired)
        }
      }
      this.#waiters.push(waiter)
    })
  }

  #unavailable(): ShardUnavailable {
    const who = this.mode === 'reader' ? 'its readers' : 'its primary'
    const cause = this.failure
    const why =
      cause === undefined
        ? `${who} exhausted ${this.mode === 'reader' ? 'their' : 'its'} restart intensity`
        : cause.reason === 'corruption'
          ? `its directory ${cause.path} is damaged (${cause.message}); rockvisor does not repair it (see README, Repairing a damaged shard)`
          : `${who} gave up after: ${cause.message}`
    return new ShardUnavailable({
      shard: this.address.id,
      message: `shard ${this.address.id} is unavailable: ${why}. Recover it with index.recover(${JSON.stringify(this.address.id)}) once the cause is fixed`,
      ...(cause === undefined ? {} : { cause }),
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
    if (this.inflight === 0) {
      // Nothing in flight, so nothing deferred: a timer left armed would keep the process alive until it fires.
      this.#clearDeferredTimer()
      this.#idle?.()
    }
  }
}
