/**
 * The reference model of an index, for model-based tests: what each partition holds after a sequence of writes,
 * and which of those states a read may legally observe under its freshness contract.
 *
 * Deliberately not a copy of the system: no keys, no views, no shards. A partition is a set of metas with at most one
 * meta per msgId and one per place (segmentId, offset); a put replaces both holders; retention removes every meta
 * older than its bound. A topic's partition history is the list of writes in the order they were issued. Writes to
 * one partition are applied in issue order. A failed batch was never applied (it is one atomic write, and injected
 * faults strike before the engine call). A failed retention may have been applied in part: it removes the metas
 * below its bound oldest first, in atomic chunks of {@link retentionChunk}, and a failure after a chunk was written
 * leaves that chunk removed. So at any moment a partition holds one of the *candidate states* after some prefix of
 * its history: the successful writes applied, and each failed retention applied to none, or some whole chunks, of
 * what it would have removed.
 *
 * The freshness contract, as prefixes of that history: a read may observe the state after any prefix that
 *
 * - includes every write its contract covers: `fresh`, every write acknowledged before the read was issued;
 *   `after` a token, the write of that token (and so every write before it); `bounded` by `maxStalenessMs` at clock
 *   time T, every write acknowledged before T - maxStalenessMs;
 * - excludes every write issued after the read completed.
 *
 * Plain data and pure functions over it; not thread-safe (JavaScript: one caller at a time).
 */
import type { MessageMeta, SegmentOffset } from '../meta.js'
import { retentionChunk } from '../store.js'
import type { Query } from './arbitraries.js'

const cmp = (a: number, b: number): number => (a < b ? -1 : a > b ? 1 : 0)

/** The index's time order: timestamp, then segmentId, then offset. */
export const byTime = (a: MessageMeta, b: MessageMeta): number => cmp(a.timestamp, b.timestamp) || cmp(a.segmentId, b.segmentId) || cmp(a.offset, b.offset)
/** Log order: segmentId, then offset. */
export const bySegmentOffset = (a: SegmentOffset, b: SegmentOffset): number => cmp(a.segmentId, b.segmentId) || cmp(a.offset, b.offset)
/** msgId order: by the msgIds' UTF-8 bytes. */
export const byMsgId = (a: MessageMeta, b: MessageMeta): number => Buffer.compare(Buffer.from(a.msgId, 'utf8'), Buffer.from(b.msgId, 'utf8'))

/** The place of a meta, as a fresh `{ segmentId, offset }`. */
export const placeOf = (m: SegmentOffset): SegmentOffset => ({ segmentId: m.segmentId, offset: m.offset })

const placeKey = (so: SegmentOffset): string => `${so.segmentId}:${so.offset}`

/**
 * The contents of one partition: at most one meta per msgId and one per (segmentId, offset). Mutable; `clone` for a
 * copy. Every answer is a fresh value (never a reference into the state).
 */
export class PartitionState {
  readonly #byId = new Map<string, MessageMeta>()
  readonly #byPlace = new Map<string, string>()

  /** Stores `meta`, first removing the meta with its msgId and the meta at its place (either may be absent). */
  put(meta: MessageMeta): void {
    this.#remove(this.#byId.get(meta.msgId))
    const holder = this.#byPlace.get(placeKey(meta))
    if (holder !== undefined) this.#remove(this.#byId.get(holder))
    const copy = { msgId: meta.msgId, timestamp: meta.timestamp, segmentId: meta.segmentId, offset: meta.offset, msgLen: meta.msgLen }
    this.#byId.set(copy.msgId, copy)
    this.#byPlace.set(placeKey(copy), copy.msgId)
  }

  /** Applies a batch as `batchPut` does (one atomic write; a valid batch names each msgId and place once). */
  putBatch(metas: readonly MessageMeta[]): void {
    for (const m of metas) this.put(m)
  }

  /** Retention: removes every meta with timestamp < `before`; returns how many it removed. */
  deleteBefore(before: number): number {
    return this.deleteOldest(before, Number.MAX_SAFE_INTEGER)
  }

  /**
   * Part of a retention: removes the `count` oldest metas (in time order) with timestamp < `before`, or all of them if
   * fewer; returns how many it removed.
   */
  deleteOldest(before: number, count: number): number {
    const doomed = this.scanByTime(Number.MIN_SAFE_INTEGER, before - 1, count)
    for (const m of doomed) this.#remove(this.#byId.get(m.msgId))
    return doomed.length
  }

  #remove(m: MessageMeta | undefined): void {
    if (m === undefined) return
    this.#byId.delete(m.msgId)
    this.#byPlace.delete(placeKey(m))
  }

  /** How many metas it holds. */
  get size(): number {
    return this.#byId.size
  }

  /** The meta stored under `msgId`, or undefined (as `getByMsgId`). */
  getByMsgId(msgId: string): MessageMeta | undefined {
    const m = this.#byId.get(msgId)
    return m === undefined ? undefined : { ...m }
  }

  /** The msgId at that place, or undefined (as `getMsgIdBySegmentOffset`). */
  getMsgIdBySegmentOffset(so: SegmentOffset): string | undefined {
    return this.#byPlace.get(placeKey(so))
  }

  /** The places of the first and last meta in time order with timestamp in [startTs, endTs], or undefined (as `getRangeByTime`). */
  getRangeByTime(startTs: number, endTs: number): { first: SegmentOffset; last: SegmentOffset } | undefined {
    const inRange = this.scanByTime(startTs, endTs)
    return inRange.length === 0 ? undefined : { first: placeOf(inRange[0]!), last: placeOf(inRange.at(-1)!) }
  }

  /** The metas with timestamp in [startTs, endTs] in time order, at most `limit` of them (as `scanByTime`). */
  scanByTime(startTs: number, endTs: number, limit?: number): MessageMeta[] {
    const all = this.metas('byTime').filter((m) => m.timestamp >= startTs && m.timestamp <= endTs)
    return limit === undefined ? all : all.slice(0, limit)
  }

  /** Every meta, in one of the index's three orders. */
  metas(order: 'byMsgId' | 'byTime' | 'bySegmentOffset' = 'byMsgId'): MessageMeta[] {
    const all = [...this.#byId.values()].map((m) => ({ ...m }))
    return all.sort(order === 'byMsgId' ? byMsgId : order === 'byTime' ? byTime : bySegmentOffset)
  }

  /** A string equal for two states exactly when they hold the same metas. */
  signature(): string {
    return JSON.stringify(this.metas('byMsgId').map((m) => [m.msgId, m.timestamp, m.segmentId, m.offset, m.msgLen]))
  }

  /** An independent copy. */
  clone(): PartitionState {
    const c = new PartitionState()
    for (const m of this.#byId.values()) c.put(m)
    return c
  }
}

/** The answer the model gives to `q` in `state` (what the index's method of the same name resolves with). */
export const answer = (state: PartitionState, q: Query): unknown => {
  switch (q.kind) {
    case 'getByMsgId':
      return state.getByMsgId(q.msgId)
    case 'getMsgIdBySegmentOffset':
      return state.getMsgIdBySegmentOffset(q)
    case 'getRangeByTime':
      return state.getRangeByTime(q.startTs, q.endTs)
    case 'scanByTime':
      return state.scanByTime(q.startTs, q.endTs, q.limit)
  }
}

/** A write of a partition: a batch, or retention. */
export type Write = { readonly kind: 'batchPut'; readonly metas: readonly MessageMeta[] } | { readonly kind: 'deleteBefore'; readonly before: number }

/** One issued write and, once settled, its outcome. */
export interface WriteRecord {
  readonly topic: string
  readonly partition: number
  readonly write: Write
  /** Its position in the partition's history (0 for the first write issued). */
  readonly n: number
  outcome: 'pending' | 'ok' | 'failed'
  /** Once acknowledged: its token and the clock time of the acknowledgement. */
  token?: string
  ackAt?: number
  /** Once acknowledged, for retention: how many metas the index said it deleted. */
  deleted?: number
}

/** The freshness contract of a read (see the module comment). */
export type Freshness =
  | { readonly consistency: 'fresh' }
  | { readonly consistency: 'after'; readonly write: WriteRecord | undefined }
  | { readonly consistency: 'bounded'; readonly maxStalenessMs: number }

/** The prefixes of a partition's history a read may observe: from `atLeast` to `atMost` writes (inclusive). */
export interface ReadWindow {
  readonly topic: string
  readonly partition: number
  readonly freshness: Freshness
  /** Every write the read's contract covers lies below this position. */
  readonly atLeast: number
  /** Writes issued when the read completed; undefined while it runs. */
  atMost: number | undefined
}

/**
 * The model of a whole index: every partition's history of writes. Call {@link IndexModel.issue} when a write is
 * issued and {@link IndexModel.settle} when it settles; {@link IndexModel.openRead} when a read is issued and
 * {@link IndexModel.closeRead} when it settles; then {@link IndexModel.check} the read's answer.
 */
export class IndexModel {
  readonly #histories = new Map<string, WriteRecord[]>()

  #key(topic: string, partition: number): string {
    return `${partition}\u0000${topic}`
  }

  /** The history of (topic, partition): its writes in issue order (empty if none). */
  history(topic: string, partition: number): readonly WriteRecord[] {
    return this.#histories.get(this.#key(topic, partition)) ?? []
  }

  /** Every (topic, partition) written to, with its history. */
  partitions(): { topic: string; partition: number; history: readonly WriteRecord[] }[] {
    return [...this.#histories.values()].filter((h) => h.length > 0).map((h) => ({ topic: h[0]!.topic, partition: h[0]!.partition, history: h }))
  }

  /** Records a write as issued (outcome `pending`) and returns its record. */
  issue(topic: string, partition: number, write: Write): WriteRecord {
    const key = this.#key(topic, partition)
    const history = this.#histories.get(key) ?? []
    const rec: WriteRecord = { topic, partition, write, n: history.length, outcome: 'pending' }
    history.push(rec)
    this.#histories.set(key, history)
    return rec
  }

  /** Records a write's outcome: acknowledged at clock time `at` with `token` (and `deleted`, for retention), or failed. */
  settle(rec: WriteRecord, outcome: { token: string; at: number; deleted?: number } | 'failed'): void {
    if (outcome === 'failed') {
      rec.outcome = 'failed'
      return
    }
    rec.outcome = 'ok'
    rec.token = outcome.token
    rec.ackAt = outcome.at
    if (outcome.deleted !== undefined) rec.deleted = outcome.deleted
  }

  /**
   * The candidate states of the partition after the first `k` writes of its history (all of them by default): the
   * successful writes applied in order, each failed retention applied to none or to some whole chunks of the metas it
   * would have removed (see the module comment), pending and failed batches not applied. Distinct states only; one
   * state when no retention failed.
   */
  statesAfter(topic: string, partition: number, k = Number.MAX_SAFE_INTEGER): PartitionState[] {
    let states = [new PartitionState()]
    for (const w of this.history(topic, partition).slice(0, k)) {
      if (w.outcome === 'ok') {
        for (const state of states) {
          if (w.write.kind === 'batchPut') state.putBatch(w.write.metas)
          else state.deleteBefore(w.write.before)
        }
        // A write may make candidates equal (a retention that removes what only some of them still held).
        if (states.length > 1) states = [...new Map(states.map((state) => [state.signature(), state])).values()]
      } else if (w.outcome === 'failed' && w.write.kind === 'deleteBefore') {
        const { before } = w.write
        const next = new Map<string, PartitionState>()
        for (const state of states) {
          const older = state.scanByTime(Number.MIN_SAFE_INTEGER, before - 1).length
          for (let removed = 0; ; removed += retentionChunk) {
            const candidate = state.clone()
            candidate.deleteOldest(before, removed)
            next.set(candidate.signature(), candidate)
            if (removed >= older) break
          }
        }
        states = [...next.values()]
      }
    }
    return states
  }

  /** The last write of (topic, partition) acknowledged so far (its token is what an `after` read waits for). */
  lastAcknowledged(topic: string, partition: number): WriteRecord | undefined {
    return this.history(topic, partition).findLast((w) => w.outcome === 'ok')
  }

  /** Opens the window of a read issued now (clock time `now`) under `freshness`. */
  openRead(topic: string, partition: number, freshness: Freshness, now: number): ReadWindow {
    const history = this.history(topic, partition)
    const covered =
      freshness.consistency === 'fresh'
        ? history.findLastIndex((w) => w.outcome === 'ok')
        : freshness.consistency === 'after'
          ? (freshness.write?.n ?? -1)
          : history.findLastIndex((w) => w.outcome === 'ok' && w.ackAt! < now - freshness.maxStalenessMs)
    return { topic, partition, freshness, atLeast: covered + 1, atMost: undefined }
  }

  /** Closes the window of a read that settled now. */
  closeRead(window: ReadWindow): void {
    window.atMost = this.history(window.topic, window.partition).length
  }

  /** Every answer to `q` the read of `window` may legally give (one per candidate state of each allowed prefix, duplicates kept). */
  allowedAnswers(window: ReadWindow, q: Query): unknown[] {
    if (window.atMost === undefined) throw new Error('allowedAnswers: the read has not completed (closeRead first)')
    const allowed: unknown[] = []
    for (let k = window.atLeast; k <= window.atMost; k++) {
      for (const state of this.statesAfter(window.topic, window.partition, k)) allowed.push(answer(state, q))
    }
    return allowed
  }

  /**
   * Checks the answer of a completed read: undefined if some allowed prefix answers `q` with a value deeply equal to
   * `got`, else a message saying what was read, what was allowed and the history.
   */
  check(window: ReadWindow, q: Query, got: unknown): string | undefined {
    const allowed = this.allowedAnswers(window, q)
    if (allowed.some((a) => deepEqual(a, got))) return undefined
    const history = this.history(window.topic, window.partition)
    return (
      `${describeQuery(q)} on ${JSON.stringify(window.topic)}/${window.partition} (${describeFreshness(window.freshness)}) answered ${JSON.stringify(got)}; ` +
      `allowed (prefixes ${window.atLeast}..${window.atMost}): ${JSON.stringify(allowed)}; history: ${describeHistory(history)}`
    )
  }

  /**
   * Checks an acknowledged retention's count: undefined if it deleted what the model held below its bound (in one of
   * the candidate states before it), else a message.
   */
  checkRetention(rec: WriteRecord): string | undefined {
    if (rec.write.kind !== 'deleteBefore' || rec.outcome !== 'ok') return undefined
    const before = rec.write.before
    const expected = [...new Set(this.statesAfter(rec.topic, rec.partition, rec.n).map((s) => s.scanByTime(Number.MIN_SAFE_INTEGER, before - 1).length))]
    return expected.includes(rec.deleted!)
      ? undefined
      : `deleteBefore(${before}) on ${rec.topic}/${rec.partition} reported ${rec.deleted} deleted; the model held ${expected.join(' or ')} older metas (history: ${describeHistory(this.history(rec.topic, rec.partition))})`
  }
}

/** Structural equality of plain data (objects, arrays, primitives; `undefined` properties count as absent). */
export const deepEqual = (a: unknown, b: unknown): boolean => {
  if (Object.is(a, b)) return true
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false
  if (Array.isArray(a) !== Array.isArray(b)) return false
  const ka = Object.keys(a).filter((k) => (a as Record<string, unknown>)[k] !== undefined)
  const kb = Object.keys(b).filter((k) => (b as Record<string, unknown>)[k] !== undefined)
  return ka.length === kb.length && ka.every((k) => deepEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]))
}

/** A short readable form of a query (for command names and failure messages). */
export const describeQuery = (q: Query): string => {
  switch (q.kind) {
    case 'getByMsgId':
      return `getByMsgId(${JSON.stringify(q.msgId)})`
    case 'getMsgIdBySegmentOffset':
      return `getMsgIdBySegmentOffset(${q.segmentId}:${q.offset})`
    case 'getRangeByTime':
      return `getRangeByTime(${q.startTs}, ${q.endTs})`
    case 'scanByTime':
      return `scanByTime(${q.startTs}, ${q.endTs}${q.limit === undefined ? '' : `, limit ${q.limit}`})`
  }
}

/** A short readable form of a freshness contract. */
export const describeFreshness = (f: Freshness): string =>
  f.consistency === 'bounded' ? `bounded ${f.maxStalenessMs} ms` : f.consistency === 'after' ? `after ${f.write?.token ?? '(no write yet)'}` : 'fresh'

/** A short readable form of metas: `id@timestamp/segment:offset`. */
export const describeMetas = (metas: readonly MessageMeta[]): string => metas.map((m) => `${JSON.stringify(m.msgId)}@${m.timestamp}/${m.segmentId}:${m.offset}`).join(' ')

const describeHistory = (history: readonly WriteRecord[]): string =>
  history.map((w) => `[${w.outcome} ${w.write.kind === 'batchPut' ? describeMetas(w.write.metas) : `deleteBefore ${w.write.before}`}]`).join(' ')
