/**
 * What the soak's parent (scripts/soak.ts) and its writer processes (scripts/soak-writer.ts) agree on: the topics
 * and partitions written, the metas (a pure function of (writer generation, counter), so the parent's model of
 * acknowledged writes stores a few numbers per batch instead of the metas), the line protocol, the seeded PRNG, the
 * bounded wait that tells a stuck read, and the error bookkeeping both sides use.
 */
import { isRockvisorError, type FaultInjector, type MessageMeta } from '../src/index.js'

/** Topics written (one needs `~xx` escapes in its directory name). */
export const topics = ['orders', 'Events/EU-ü'] as const
/** Partitions 0..partitions-1 of each topic. */
export const partitions = 5
/** Shards per topic of the soak's root. */
export const shards = 3
/** A read that takes longer than this is stuck (a failure). */
export const stuckMs = 10_000
/** Timestamps of generation g are g * genSpan + n: increasing across writer generations, unique within one. */
const genSpan = 1_000_000_000

/**
 * The meta numbered `n` by writer generation `gen`. Unique msgId and unique (segmentId, offset) = (gen, n), so no
 * write of the soak ever replaces another. Some msgIds carry non-ASCII characters.
 */
export const metaOf = (gen: number, n: number): MessageMeta => ({
  msgId: n % 7 === 3 ? `g${gen}-${n}-ü✓` : `g${gen}-${n}`,
  timestamp: timestampOf(gen, n),
  segmentId: gen,
  offset: n,
  msgLen: 1 + ((gen * 7_919 + n * 104_729) % 4_096),
})

export const timestampOf = (gen: number, n: number): number => gen * genSpan + n

export const sameMeta = (a: MessageMeta | undefined, b: MessageMeta): boolean =>
  a !== undefined && a.msgId === b.msgId && a.timestamp === b.timestamp && a.segmentId === b.segmentId && a.offset === b.offset && a.msgLen === b.msgLen

/** Lines a writer prints on stdout, one JSON object each. */
export type WriterLine =
  /** The index is open (the root exists). */
  | { t: 'up' }
  /** An acknowledged batch: metas metaOf(gen, n .. n+c-1) in (topics[tp], p), and its token. */
  | { t: 'ack'; tp: number; p: number; n: number; c: number; tok: string }
  /** Cumulative counters of this writer process. */
  | ({ t: 'stats' } & Counters)
  /** One failure, described (the first few only). */
  | { t: 'detail'; kind: 'wrong' | 'untyped' | 'stuck' | 'note'; text: string }
  /** After a clean close: native handles still open (must be 0). */
  | { t: 'closed'; liveHandles: number; tableHandles: number }

/** The counters each side keeps. */
export interface Counters {
  reads: number
  wrong: number
  untyped: number
  stuck: number
  faults: number
  /** Typed errors by tag (StorageFailure also by reason). */
  typed: Record<string, number>
  tornViews: number
  corruptReads: number
  tornEvents: number
  /** What reached the FaultInjector: failures it injected, reads on readers and on primaries, successful opens. */
  engine: EngineCounts
}

export interface EngineCounts {
  injected: number
  readerReads: number
  primaryReads: number
  opens: number
}

export const newCounters = (): Counters => ({
  reads: 0,
  wrong: 0,
  untyped: 0,
  stuck: 0,
  faults: 0,
  typed: {},
  tornViews: 0,
  corruptReads: 0,
  tornEvents: 0,
  engine: { injected: 0, readerReads: 0, primaryReads: 0, opens: 0 },
})

/** A FaultInjector's counts (cumulative over its life). */
export const engineCounts = (f: FaultInjector): EngineCounts => ({
  injected: f.injected.open + f.injected.read + f.injected.write,
  readerReads: f.calls.readerReads,
  primaryReads: f.calls.primaryReads,
  opens: f.opened.primary + f.opened.reader,
})

export const addEngineCounts = (a: EngineCounts, b: EngineCounts): void => {
  a.injected += b.injected
  a.readerReads += b.readerReads
  a.primaryReads += b.primaryReads
  a.opens += b.opens
}

/** Adds `b` into `a` (the per-index integrity counters are last values, summed over indexes). */
export const addCounters = (a: Counters, b: Counters): void => {
  a.reads += b.reads
  a.wrong += b.wrong
  a.untyped += b.untyped
  a.stuck += b.stuck
  a.faults += b.faults
  for (const [k, v] of Object.entries(b.typed)) a.typed[k] = (a.typed[k] ?? 0) + v
  a.tornViews += b.tornViews
  a.corruptReads += b.corruptReads
  a.tornEvents += b.tornEvents
  addEngineCounts(a.engine, b.engine)
}

/** The tag an error is counted under: its `_tag` (StorageFailure with its reason), or undefined for an untyped error. */
export const tagOf = (e: unknown): string | undefined => {
  if (!isRockvisorError(e)) return undefined
  return e._tag === 'StorageFailure' ? `StorageFailure(${e.reason})` : e._tag
}

export const describeError = (e: unknown): string => (e instanceof Error ? `${e.constructor.name}: ${e.stack ?? e.message}` : `non-Error thrown: ${String(e)}`).slice(0, 1_000)

/** The integrity counters the main engineer is adding to stats (`shards[i].integrity`), read defensively. */
export const integrityOf = (shardStats: readonly unknown[]): { tornViews: number; corruptReads: number } => {
  let tornViews = 0
  let corruptReads = 0
  for (const s of shardStats) {
    const i = (s as { integrity?: { tornViews?: unknown; corruptReads?: unknown } }).integrity
    if (typeof i?.tornViews === 'number') tornViews += i.tornViews
    if (typeof i?.corruptReads === 'number') corruptReads += i.corruptReads
  }
  return { tornViews, corruptReads }
}

/**
 * A seeded PRNG (xorshift32 over a scrambled seed): every random choice of the soak comes from one, so a run's
 * choices are reproducible from its seed (its timing, and so what the choices meet, is not).
 */
export class Rng {
  #s: number
  constructor(seed: number) {
    // Scramble the seed so nearby seeds diverge at once, and never let the state be 0 (xorshift's fixed point).
    let s = (seed ^ 0x9e3779b9) >>> 0
    s = Math.imul(s ^ (s >>> 16), 0x85ebca6b) >>> 0
    s = Math.imul(s ^ (s >>> 13), 0xc2b2ae35) >>> 0
    this.#s = (s ^ (s >>> 16)) >>> 0 || 0x2545f491
  }
  /** Uniform in [0, 1). */
  next(): number {
    let x = this.#s
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    this.#s = x >>> 0
    return this.#s / 4_294_967_296
  }
  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n)
  }
  /** Uniform in [lo, hi). */
  between(lo: number, hi: number): number {
    return lo + this.next() * (hi - lo)
  }
  chance(p: number): boolean {
    return this.next() < p
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!
  }
  /** A fresh 32-bit seed for another generator. */
  seed(): number {
    return this.int(4_294_967_296)
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * Runs `check` (which performs a read and judges its answer) with a bound of {@link stuckMs}: resolves `'stuck'` if
 * the read has not finished by then (the read goes on, and is still judged when it ends), else what `check` did.
 */
export const bounded = async (check: () => Promise<void>): Promise<'done' | 'stuck'> => {
  let timer: NodeJS.Timeout | undefined
  const stuck = new Promise<'stuck'>((resolve) => (timer = setTimeout(() => resolve('stuck'), stuckMs)))
  try {
    return await Promise.race([check().then(() => 'done' as const), stuck])
  } finally {
    clearTimeout(timer)
  }
}
