/**
 * The writes a writer-mode shard applied that its readers' views may not hold yet, kept in memory so that a `fresh`
 * point read never needs the primary: a reader whose view is at sequence `s` answers a key from its view unless this
 * memory holds a newer write of that key (sequence > `s`), which then answers instead. Together they answer what the
 * primary would: the reader's view holds every write up to `s`, and this memory the newest write of each key after
 * `floor`, for any view at `s >= floor`.
 *
 * Only the keys point reads look up are indexed (the by-id and by-segment-offset views), the newest write per key;
 * a batch is indexed when a read first asks the memory, so writes that no fresh read needs cost one pass to count.
 * Of the by-time keys a batch wrote or deleted, only where they fall is kept (per partition, the least and greatest
 * timestamp): enough to tell that no write after a view touched a time window, which the view then holds as it is
 * now ({@link RecentWrites.touchesTimes}: range reads and scans at a stale view). A range deletion raises the floor
 * past its batch instead. The memory is pruned as the
 * readers' views move on (everything at or below the oldest view goes) and bounded in bytes (the oldest batches go
 * first, raising the floor: a reader whose view is older than the floor refreshes before it answers fresh reads).
 * The spans of timestamps of the batches the byte bound dropped are kept longer (a few numbers each, at most
 * {@link spanBound} batches), with a floor of their own ({@link RecentWrites.timesFloor}): under a writer that
 * fills the bytes in less than a reader's refresh takes, a stale view still serves the windows nobody wrote since.
 */
import type { WriteOp } from './engine.js'
import { partitionOfTimeKey, timestampOfTimeKey, View } from './keys.js'

/** The span of timestamps of a batch dropped for bytes: its sequence and its triples (see addTime). */
interface Span {
  readonly seq: number
  readonly times: readonly number[]
}

/** The newest write of a key: its value, or `undefined` for a deletion. */
interface Latest {
  readonly seq: number
  readonly value: Uint8Array | undefined
}

/** A key held: its newest write, and the next key of the same hash. */
interface Entry extends Latest {
  readonly key: Uint8Array
  seq: number
  value: Uint8Array | undefined
  next: Entry | undefined
}

/**
 * One recorded batch: its sequence, its operations, and (once indexed into the map) the keys it wrote. A batch is
 * indexed only when a read asks the memory (see {@link RecentWrites.newer}): a write pays one pass over its operations
 * to count bytes, and a batch pruned before any fresh read needed it never costs a map entry.
 */
interface Batch {
  readonly seq: number
  ops: readonly WriteOp[] | undefined
  entries: readonly Entry[] | undefined
  readonly bytes: number
  /** The by-time keys it wrote or deleted, as triples (partition, least timestamp, greatest); see {@link addTime}. */
  readonly times: readonly number[] | undefined
}

/**
 * Counts a by-time key in `times` (triples: partition, least timestamp, greatest). A key too short to be a by-time
 * key (read from the logs, say) counts as touching every partition at every time (partition -1).
 */
const addTime = (times: number[], key: Uint8Array): void => {
  const partition = partitionOfTimeKey(key)
  if (partition === undefined) {
    times.push(-1, -Infinity, Infinity)
    return
  }
  const ts = timestampOfTimeKey(key)
  for (let i = 0; i < times.length; i += 3) {
    if (times[i] !== partition) continue
    if (ts < times[i + 1]!) times[i + 1] = ts
    if (ts > times[i + 2]!) times[i + 2] = ts
    return
  }
  times.push(partition, ts, ts)
}

/**
 * The map key of a storage key: a 30-bit FNV-1a hash of its bytes (a small integer, which a Map hashes without
 * making a string of the key; keys of one hash are chained and told apart by their bytes).
 */
export const hashOf = (key: Uint8Array): number => {
  let h = 0x811c9dc5
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key[i]!, 0x01000193)
  return h & 0x3fffffff
}

const sameBytes = (a: Uint8Array, b: Uint8Array): boolean => {
  if (a.length !== b.length) return false
  for (let i = a.length - 1; i >= 0; i--) if (a[i] !== b[i]) return false
  return true
}

/** Whether point reads look `key` up (the views recorded). */
const pointKey = (key: Uint8Array): boolean => key[0] === View.byId || key[0] === View.bySegmentOffset

/** Bytes a recorded operation costs beyond its key and value (the operation, the map entry, the batch's list): an estimate. */
const entryOverhead = 64

/**
 * Slots of the counts of held keys by hash (see {@link RecentWrites.newer}), by default: 128 KiB, allocated when
 * the first key is indexed. A count that reached {@link stuck} stays there (it only sends that slot's lookups to the
 * map): a count that wrapped around to 0 would hide keys the memory holds.
 */
const countSlots = 1 << 17

/**
 * Most batches whose spans of timestamps are kept after the byte bound dropped their keys (see the module comment):
 * 16,384 batches of at most a few partitions each, a few hundred KiB; under a writer of 600 batches a second, half
 * a minute of them.
 */
export const spanBound = 16_384
const stuck = 255

export class RecentWrites {
  /** The keys held, by hash (see {@link hashOf}). */
  readonly #latest = new Map<number, Entry>()
  /**
   * How many keys held have a hash of each slot (hash modulo `slots`): a read whose key's slot counts
   * none is answered without the map. Most fresh reads look up keys written before the reader's view, which the
   * memory does not hold, and a lookup in a map of tens of thousands of keys costs cache misses a small table does
   * not (it took 8% of the main thread under 1,000 callers and a writer).
   */
  #counts: Uint8Array | undefined
  #batches: Batch[] = []
  #head = 0
  #bytes = 0
  /** Batches before this position are in the map (those from {@link #head} on). */
  #indexed = 0
  /** Every write of a point-read key after this sequence is held (its key's newest one). */
  #floor: number
  /** The spans of timestamps of batches dropped for bytes, oldest first, from {@link #spansHead} on. */
  #spans: Span[] = []
  #spansHead = 0
  /** Every batch after this sequence that wrote or deleted a by-time key has its span here or in a batch held. */
  #timesFloor: number

  /** Slots of {@link #counts}, less one (a power of two less one). */
  readonly #slotMask: number

  /**
   * `floor`: the sequence from which on writes are recorded (every write at or below it is in every usable view).
   * `slots`: a power of two, the slots of the counts of keys by hash (fewer slots: more keys share one; tests).
   * `maxSpans`: most spans of dropped batches kept (see {@link spanBound}; fewer: tests).
   */
  constructor(
    floor: number,
    readonly maxBytes: number,
    readonly slots = countSlots,
    readonly maxSpans = spanBound,
  ) {
    if (!Number.isInteger(Math.log2(slots))) throw new RangeError(`RecentWrites: slots must be a power of two, got ${slots}`)
    this.#floor = floor
    this.#timesFloor = floor
    this.#slotMask = slots - 1
  }

  /** A view at `seq` or newer may be merged with this memory (see the module comment). */
  get floor(): number {
    return this.#floor
  }

  /** {@link touchesTimes} answers for a view at `seq` or newer: at or below {@link floor}, and lower as long as the spans last. */
  get timesFloor(): number {
    return this.#timesFloor
  }

  /** Bytes held, estimated (keys, values and bookkeeping of every batch not pruned). */
  get bytes(): number {
    return this.#bytes
  }

  /** Nothing held: no view needs merging. */
  get empty(): boolean {
    return this.#head === this.#batches.length
  }

  /**
   * Records the batch `ops` applied at sequence `seq` (sequences only grow). A range deletion cannot be merged key by
   * key: the floor moves to `seq`, so only views that hold this batch are merged from now on.
   */
  record(ops: readonly WriteOp[], seq: number): void {
    // Until the batch is indexed, all of its operations are held: all of them count.
    let bytes = 0
    let points = false
    let times: number[] | undefined
    for (const op of ops) {
      if (op.type === 'delRange') {
        this.reset(seq)
        return
      }
      points ||= pointKey(op.key)
      if (op.key[0] === View.byTime) addTime((times ??= []), op.key)
      bytes += op.key.byteLength + (op.type === 'put' ? op.value.byteLength : 0) + entryOverhead
    }
    if (!points && times === undefined) return
    // A batch of no point-read key has nothing to index (its by-time keys are held as `times`).
    this.#batches.push({ seq, ops: points ? ops : undefined, entries: points ? undefined : [], bytes, times })
    this.#bytes += bytes
    while (this.#bytes > this.maxBytes && this.#head < this.#batches.length) this.#dropOldest()
  }

  /**
   * The newest recorded write of `key` newer than a view at `viewSeq` (which must be >= floor): `{ value }` (value
   * `undefined`: deleted), or `undefined` when the view holds the key's newest write itself.
   */
  newer(key: Uint8Array, viewSeq: number): Latest | undefined {
    if (this.#indexed < this.#batches.length) this.#index()
    if (this.#latest.size === 0) return undefined
    const h = hashOf(key)
    if (this.#counts![h & this.#slotMask] === 0) return undefined
    let e = this.#latest.get(h)
    while (e !== undefined && !sameBytes(e.key, key)) e = e.next
    return e !== undefined && e.seq > viewSeq ? e : undefined
  }

  /**
   * Whether a batch held that is newer than a view at `viewSeq` (which must be >= floor) wrote or deleted by-time
   * keys of `partition` whose timestamps span a range that meets [from, to] (the span, not each timestamp, is kept:
   * a batch that wrote at both sides of the window counts as touching it). When none did, that view holds the
   * partition's by-time entries in [from, to] exactly as they are now: a range read or a scan of that window may
   * read the view alone.
   */
  touchesTimes(partition: number, from: number, to: number, viewSeq: number): boolean {
    for (let i = this.#batches.length - 1; i >= this.#head; i--) {
      const batch = this.#batches[i]!
      // Sequences only grow: the batches before this one are in the view too.
      if (batch.seq <= viewSeq) return false
      if (batch.times !== undefined && meets(batch.times, partition, from, to)) return true
    }
    // Then the spans of the batches dropped for bytes, older still (the view must be at or above timesFloor).
    for (let i = this.#spans.length - 1; i >= this.#spansHead; i--) {
      const span = this.#spans[i]!
      if (span.seq <= viewSeq) return false
      if (meets(span.times, partition, from, to)) return true
    }
    return false
  }

  /** Every view usable from now on is at `seq` or newer: writes at or below it are dropped. */
  prune(seq: number): void {
    while (this.#head < this.#batches.length && this.#batches[this.#head]!.seq <= seq) this.#dropOldest()
    while (this.#spansHead < this.#spans.length && this.#spans[this.#spansHead]!.seq <= seq) this.#dropOldestSpan()
    if (seq > this.#floor) this.#floor = seq
    if (seq > this.#timesFloor) this.#timesFloor = seq
  }

  /** Forgets everything: only views at `seq` or newer may be merged from now on. */
  reset(seq: number): void {
    this.#latest.clear()
    this.#counts?.fill(0)
    this.#batches = []
    this.#head = 0
    this.#indexed = 0
    this.#bytes = 0
    this.#spans = []
    this.#spansHead = 0
    if (seq > this.#floor) this.#floor = seq
    if (seq > this.#timesFloor) this.#timesFloor = seq
  }

  /** Enters every batch not yet indexed into the map, in sequence order (so the newest write of a key wins). */
  #index(): void {
    if (this.#indexed < this.#head) this.#indexed = this.#head
    for (; this.#indexed < this.#batches.length; this.#indexed++) {
      const batch = this.#batches[this.#indexed]!
      if (batch.ops === undefined) continue
      const entries: Entry[] = []
      for (const op of batch.ops) {
        if (op.type === 'delRange' || !pointKey(op.key)) continue
        entries.push(this.#set(op.key, batch.seq, op.type === 'put' ? op.value : undefined))
      }
      batch.ops = undefined
      batch.entries = entries
    }
  }

  /** Holds `value` (undefined: a deletion) as the newest write of `key`, at `seq`; returns the key's entry. */
  #set(key: Uint8Array, seq: number, value: Uint8Array | undefined): Entry {
    const h = hashOf(key)
    const first = this.#latest.get(h)
    let e = first
    while (e !== undefined && !sameBytes(e.key, key)) e = e.next
    if (e !== undefined) {
      e.seq = seq
      e.value = value
      return e
    }
    const added: Entry = { key, seq, value, next: first }
    this.#latest.set(h, added)
    const counts = (this.#counts ??= new Uint8Array(this.slots))
    const slot = h & this.#slotMask
    if (counts[slot]! < stuck) counts[slot]!++
    return added
  }

  /** Forgets `entry`. */
  #delete(entry: Entry): void {
    const h = hashOf(entry.key)
    let e = this.#latest.get(h)
    if (e === entry) {
      if (entry.next === undefined) this.#latest.delete(h)
      else this.#latest.set(h, entry.next)
    } else {
      while (e !== undefined && e.next !== entry) e = e.next
      if (e === undefined) return
      e.next = entry.next
    }
    const counts = this.#counts!
    const slot = h & this.#slotMask
    if (counts[slot]! < stuck) counts[slot]!--
  }

  #dropOldest(): void {
    const batch = this.#batches[this.#head]!
    this.#batches[this.#head++] = undefined as unknown as Batch
    // A key written again by a later batch keeps its entry (its sequence is that batch's).
    if (batch.entries !== undefined) for (const e of batch.entries) if (e.seq === batch.seq) this.#delete(e)
    this.#bytes -= batch.bytes
    if (batch.seq > this.#floor) this.#floor = batch.seq
    // Its span outlives its keys (a batch that wrote no by-time key touches no window: nothing to keep).
    if (batch.times !== undefined) {
      this.#spans.push({ seq: batch.seq, times: batch.times })
      while (this.#spans.length - this.#spansHead > this.maxSpans) this.#dropOldestSpan()
    }
    if (this.#head > 1024 && this.#head * 2 > this.#batches.length) {
      this.#batches = this.#batches.slice(this.#head)
      this.#indexed = Math.max(0, this.#indexed - this.#head)
      this.#head = 0
    }
  }

  /** Forgets the oldest span kept: views at or below its batch can no longer be asked about time windows. */
  #dropOldestSpan(): void {
    const span = this.#spans[this.#spansHead]!
    this.#spans[this.#spansHead++] = undefined as unknown as Span
    if (span.seq > this.#timesFloor) this.#timesFloor = span.seq
    if (this.#spansHead > 1024 && this.#spansHead * 2 > this.#spans.length) {
      this.#spans = this.#spans.slice(this.#spansHead)
      this.#spansHead = 0
    }
  }
}

/** Whether the triples `times` (partition, least timestamp, greatest; see addTime) meet [from, to] in `partition`. */
const meets = (times: readonly number[], partition: number, from: number, to: number): boolean => {
  for (let j = 0; j < times.length; j += 3) {
    if ((times[j] === partition || times[j] === -1) && times[j + 1]! <= to && times[j + 2]! >= from) return true
  }
  return false
}
