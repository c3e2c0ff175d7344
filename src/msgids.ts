/**
 * Which msgIds a partition may hold, so that a write looks up (for the replace semantics, see src/store.ts) only the
 * msgIds that may already be there, instead of every msgId it writes. New msgIds, the common case of a message
 * queue's index, then cost no read at all.
 *
 * A {@link MsgIdFilter} is a Bloom filter over by-id keys: it may answer "may hold" for a key it never saw (about 1%
 * of keys per stage), never "does not hold" for a key it saw. {@link PartitionMsgIds} keeps one per partition and
 * earns the right to answer: it learns what the partition holds by scanning its by-id view in chunks, one chunk per
 * write to the partition, and every write adds its msgIds before it writes. Until the scan has reached the end of
 * the view, every msgId is looked up. Only this index's primary writes the shard, and writes are serialized, so no
 * key can slip between the scan and the writes; a new primary starts over (the directory was unlocked meanwhile).
 */
import type { StorageHandle } from './engine.js'
import { View, rangeEnd, rangeStart } from './keys.js'

/** Bits per key of each stage (about 1% false "may hold" at its capacity with {@link probes} probes). */
const bitsPerKey = 10
const probes = 7
/** The first stage's capacity in keys; each further stage holds four times the one before. */
const firstCapacity = 1024

/** Two 32-bit hashes of `key`'s bytes (FNV-1a, and a multiplicative hash finished by murmur3's mix). */
const hashes = (key: Uint8Array): [number, number] => {
  let a = 0x811c9dc5
  let b = 0x9e3779b9 ^ key.length
  for (let i = 0; i < key.length; i++) {
    const c = key[i]!
    a = Math.imul(a ^ c, 0x01000193)
    b = Math.imul(b ^ c, 0x5bd1e995)
    b ^= b >>> 15
  }
  b ^= b >>> 16
  b = Math.imul(b, 0x85ebca6b)
  b ^= b >>> 13
  b = Math.imul(b, 0xc2b2ae35)
  b ^= b >>> 16
  // An odd step visits distinct bits of a power-of-two table.
  return [a >>> 0, (b | 1) >>> 0]
}

/** Bits of the table of a stage of `capacity` keys: a power of two, at least {@link bitsPerKey} per key. */
const tableBits = (capacity: number): number => {
  let size = 32
  while (size < capacity * bitsPerKey) size *= 2
  return size
}

class Stage {
  readonly bits: Uint32Array
  readonly mask: number
  count = 0
  constructor(
    readonly capacity: number,
    size: number,
  ) {
    this.bits = new Uint32Array(size / 32)
    this.mask = size - 1
  }
  add(h1: number, h2: number): void {
    for (let i = 0; i < probes; i++) {
      const bit = (h1 + Math.imul(i, h2)) & this.mask
      this.bits[bit >>> 5]! |= 1 << (bit & 31)
    }
    this.count++
  }
  has(h1: number, h2: number): boolean {
    for (let i = 0; i < probes; i++) {
      const bit = (h1 + Math.imul(i, h2)) & this.mask
      if ((this.bits[bit >>> 5]! & (1 << (bit & 31))) === 0) return false
    }
    return true
  }
}

/**
 * A Bloom filter over keys that grows with what it holds: stages of four times the capacity of the one before, each
 * at about 1% false positives when full (so a few percent in all after many stages). `mayHold` is false only for
 * keys never added.
 */
export class MsgIdFilter {
  readonly #stages: Stage[] = []
  /** A stage could not be added (its memory was refused): the filter no longer holds every key added. */
  #full = false
  /**
   * Keys held: those added that the filter did not already say it may hold (a key added again, or one the filter
   * wrongly says it holds, is not added: the answer is already "may hold", and rewrites of the same msgIds never grow
   * the filter).
   */
  count = 0

  /**
   * `expected`: how many keys the first stage is sized for (at least 1,024). `reserve(bytes)` is asked before each
   * stage's table is allocated (the first one included); when it refuses, the filter is {@link full}.
   */
  constructor(
    expected = firstCapacity,
    private readonly reserve: (bytes: number) => boolean = () => true,
  ) {
    this.#grow(Math.max(firstCapacity, expected))
  }

  /** A stage's memory was refused: the filter misses keys added since, and must not be asked (see `mayHold`). */
  get full(): boolean {
    return this.#full
  }

  /** Adds a stage of `capacity` keys, or makes the filter {@link full} if its memory is refused. */
  #grow(capacity: number): Stage | undefined {
    const size = tableBits(capacity)
    if (!this.reserve(size / 8)) {
      this.#full = true
      return undefined
    }
    const stage = new Stage(capacity, size)
    this.#stages.push(stage)
    return stage
  }

  add(key: Uint8Array): void {
    if (this.#full) return
    const [h1, h2] = hashes(key)
    for (const s of this.#stages) if (s.has(h1, h2)) return
    // Not full: the first stage was allocated.
    let last: Stage | undefined = this.#stages[this.#stages.length - 1]!
    if (last.count >= last.capacity) {
      last = this.#grow(last.capacity * 4)
      if (last === undefined) return
    }
    last.add(h1, h2)
    this.count++
  }

  /** False only for a key never added (true for every key once the filter is {@link full}). */
  mayHold(key: Uint8Array): boolean {
    if (this.#full) return true
    const [h1, h2] = hashes(key)
    for (const s of this.#stages) if (s.has(h1, h2)) return true
    return false
  }

  /** Bytes of the filter's bit tables. */
  get bytes(): number {
    let n = 0
    for (const s of this.#stages) n += s.bits.byteLength
    return n
  }
}

/** Keys of the by-id view one write to a partition scans at most while its filter is being learned. */
export const scanChunk = 4_096

/**
 * The memory the filters of one shard may take together (`writes.msgIdFilterBytes`). A partition whose filter
 * would take more (a new partition's first stage, or a larger stage of a growing one) goes without one: its writes
 * look up every msgId, as with no filter at all.
 */
export class FilterBudget {
  /** Bytes of the tables of every filter of the shard. */
  used = 0
  constructor(readonly limit: number) {}

  /** Takes `bytes` if they fit. */
  take(bytes: number): boolean {
    if (this.used + bytes > this.limit) return false
    this.used += bytes
    return true
  }

  /** Gives back what a filter took. */
  give(bytes: number): void {
    this.used -= bytes
  }
}

/**
 * What one partition may hold, learned from its by-id view (see the module comment). Used only inside the shard's
 * write queue, on the primary's handle.
 */
export class PartitionMsgIds {
  /** The filter; `undefined` when its memory did not fit the budget (then every msgId is looked up). */
  #filter: MsgIdFilter | undefined
  /** Where the scan goes on (the next by-id key at or after which to read), `undefined` once it reached the end. */
  #from: Uint8Array | undefined
  /** Keys found by the last completed scan, and removed (by retention) since it began. */
  #scanned = 0
  #removed = 0
  /** A scan step failed: the filter stays incomplete (see {@link step}). */
  #failed = false

  constructor(
    readonly partition: number,
    /** The memory of the shard's filters (unbounded by default). */
    readonly budget = new FilterBudget(Infinity),
    /** Keys read per scan step. */
    readonly chunk = scanChunk,
  ) {
    this.#from = rangeStart(View.byId, partition)
    this.#filter = this.#made(new MsgIdFilter(firstCapacity, (bytes) => budget.take(bytes)))
  }

  /** `filter`, or `undefined` (its memory given back) if it is already full. */
  #made(filter: MsgIdFilter): MsgIdFilter | undefined {
    if (!filter.full) return filter
    this.#drop(filter)
    return undefined
  }

  #drop(filter: MsgIdFilter): void {
    this.budget.give(filter.bytes)
    this.#filter = undefined
  }

  /** The partition has a filter (it fit the budget; it may still be learning). */
  get filtered(): boolean {
    return this.#filter !== undefined
  }

  /** The filter answers: the scan reached the end of the view, and the filter fit its budget. */
  get complete(): boolean {
    return this.#from === undefined && this.#filter !== undefined
  }

  /** Whether a meta with this by-id key may be stored: always true until the filter is {@link complete}. */
  mayHold(key: Uint8Array): boolean {
    return this.#from !== undefined || this.#filter === undefined || this.#filter.mayHold(key)
  }

  /** Notes a by-id key about to be written (before the write: whatever its outcome, the filter holds it). */
  add(key: Uint8Array): void {
    const filter = this.#filter
    if (filter === undefined) return
    filter.add(key)
    // A larger stage did not fit the budget: the filter misses this key, so it goes.
    if (filter.full) this.#drop(filter)
  }

  /**
   * Notes that retention removed `n` metas. Once half of what the filter holds is gone, the filter is learned again
   * from the view (so its size follows the partition's, not every msgId it ever held).
   */
  removed(n: number): void {
    this.#removed += n
    const filter = this.#filter
    if (filter !== undefined && this.#from === undefined && this.#removed >= 65_536 && this.#removed * 2 >= filter.count) this.#restart(filter)
  }

  #restart(old: MsgIdFilter): void {
    this.budget.give(old.bytes)
    this.#filter = this.#made(new MsgIdFilter(Math.max(0, old.count - this.#removed), (bytes) => this.budget.take(bytes)))
    this.#from = rangeStart(View.byId, this.partition)
    this.#scanned = 0
    this.#removed = 0
  }

  /**
   * Reads the next chunk of the by-id view into the filter, if the scan has not reached the end. A chunk that fails
   * to read (a corrupted block, say) ends the scan for good: the filter never answers, every msgId is looked up as
   * without it, and the write goes on (the scan only spares reads; it must not fail writes the view would not).
   */
  async step(handle: StorageHandle): Promise<void> {
    const from = this.#from
    if (from === undefined || this.#failed || this.#filter === undefined) return
    let last: Uint8Array | undefined
    let n = 0
    try {
      for await (const { key } of handle.iterate({ gte: from, lt: rangeEnd(View.byId, this.partition), limit: this.chunk })) {
        this.add(key)
        if (this.#filter === undefined) return
        last = key
        n++
      }
    } catch {
      this.#failed = true
      return
    }
    this.#scanned += n
    if (n < this.chunk || last === undefined) {
      this.#from = undefined
      return
    }
    // The smallest key after `last`.
    const next = new Uint8Array(last.length + 1)
    next.set(last)
    this.#from = next
  }

  /** Keys found by scans since the filter was last (re)started, and bytes of its tables (for stats and tests). */
  get size(): { scanned: number; held: number; bytes: number } {
    return { scanned: this.#scanned, held: this.#filter?.count ?? 0, bytes: this.#filter?.bytes ?? 0 }
  }
}
