/**
 * fast-check arbitraries for rockvisor's inputs: metas, batches, topics (valid and hostile), partitions, time ranges,
 * read options and write tokens.
 *
 * Two families. The broad ones (`meta`, `batch`, `topic`, `partition`, ...) cover each field's whole documented range
 * and its extremes (u32 and safe-integer maxima, astral and NUL characters, path tricks), biased towards collisions:
 * small alphabets for msgIds and small integers for timestamps and places, so that replacements, duplicate
 * timestamps and tie-breaks happen in most runs. The colliding ones (`collidingMeta`, `collidingBatch`, `query`)
 * draw from a tiny domain of your choice, for model-based runs where reads must hit what was written.
 *
 * Every arbitrary here yields only valid input unless its name says otherwise (`invalidTopic`, `invalidToken`):
 * `openIndex`'s methods accept every value of a valid one and reject every value of an invalid one with
 * `InvalidInput`. Pure values: nothing here touches the disk.
 */
import fc from 'fast-check'
import { InvalidInput } from '../errors.js'
import { checkBatch, limits, type MessageMeta, type SegmentOffset } from '../meta.js'

/** Largest u32: the top of the segmentId, msgLen and partition ranges. */
export const maxU32 = limits.maxU32

const utf8Length = (s: string): number => Buffer.byteLength(s, 'utf8')

/**
 * An arbitrary built at its first use, drawing exactly what `build()` draws. fast-check builds its table of every
 * code point (for `unit: 'binary'`) when such a string arbitrary is made, ~0.5 s of CPU: made lazily, importing this
 * module costs nothing of it, and a process that never draws such a string never pays it.
 */
class Lazy<T> extends fc.Arbitrary<T> {
  #built: fc.Arbitrary<T> | undefined
  constructor(private readonly build: () => fc.Arbitrary<T>) {
    super()
  }
  private get arbitrary(): fc.Arbitrary<T> {
    return (this.#built ??= this.build())
  }
  generate(mrng: fc.Random, biasFactor: number | undefined): fc.Value<T> {
    return this.arbitrary.generate(mrng, biasFactor)
  }
  canShrinkWithoutContext(value: unknown): value is T {
    return this.arbitrary.canShrinkWithoutContext(value)
  }
  shrink(value: T, context: unknown): fc.Stream<fc.Value<T>> {
    return this.arbitrary.shrink(value, context)
  }
}

/** Strings of arbitrary code points (`\0` and astral ones among them), minLength..maxLength of them. */
const codePoints = (minLength: number, maxLength: number): fc.Arbitrary<string> => new Lazy(() => fc.string({ unit: 'binary', minLength, maxLength }))

/** Small integers 0..20: drawn often so that values repeat within and across batches. */
export const smallInt: fc.Arbitrary<number> = fc.integer({ min: 0, max: 20 })

/** A timestamp or an offset: a safe integer >= 0, often small (duplicates), sometimes anywhere up to 2^53 - 1. */
export const safeNat: fc.Arbitrary<number> = fc.oneof(
  { arbitrary: smallInt, weight: 3 },
  { arbitrary: fc.maxSafeNat(), weight: 1 },
  { arbitrary: fc.constantFrom(Number.MAX_SAFE_INTEGER, 0x1_0000_0000, 0xffff_ffff), weight: 1 },
)

/** A u32 (segmentId, msgLen): often small, sometimes anywhere up to 0xffffffff. */
export const u32: fc.Arbitrary<number> = fc.oneof(
  { arbitrary: smallInt, weight: 3 },
  { arbitrary: fc.integer({ min: 0, max: maxU32 }), weight: 1 },
  { arbitrary: fc.constant(maxU32), weight: 1 },
)

/**
 * A valid msgId: a well-formed (no lone surrogate) string of 1..40 UTF-16 units and at most `limits.msgIdBytes` UTF-8
 * bytes. Mixes arbitrary graphemes, arbitrary code points (including `\0` and astral ones) and a 3-letter alphabet
 * that makes the same id come up again and again.
 */
export const msgId: fc.Arbitrary<string> = fc
  .oneof(
    { arbitrary: fc.string({ unit: fc.constantFrom('a', 'b', 'é'), minLength: 1, maxLength: 2 }), weight: 4 },
    { arbitrary: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 12 }), weight: 2 },
    { arbitrary: codePoints(1, 40), weight: 1 },
    { arbitrary: fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 40 }), weight: 1 },
  )
  .filter((s) => s.length >= 1 && s.length <= 40 && s.isWellFormed() && utf8Length(s) <= limits.msgIdBytes)

/** A valid meta: every field within its documented range (see `MessageMeta`). */
export const meta: fc.Arbitrary<MessageMeta> = fc.record({
  msgId,
  timestamp: safeNat,
  segmentId: u32,
  offset: safeNat,
  msgLen: u32,
})

/** A valid segment offset (a place in the log). */
export const segmentOffset: fc.Arbitrary<SegmentOffset> = fc.record({ segmentId: u32, offset: safeNat })

/** True when two metas name the same message (msgId) or the same place in the log (segmentId, offset). */
export const sameMessageOrPlace = (a: MessageMeta, b: MessageMeta): boolean =>
  a.msgId === b.msgId || (a.segmentId === b.segmentId && a.offset === b.offset)

/**
 * A valid, non-empty batch of 1..12 metas: no msgId twice and no (segmentId, offset) twice, as `batchPut` requires.
 * (Empty batches are left out on purpose: they write nothing, not even a sequence number.)
 */
export const batch: fc.Arbitrary<MessageMeta[]> = fc.uniqueArray(meta, { comparator: sameMessageOrPlace, minLength: 1, maxLength: 12 })

/** A partition number (u32): often one of a handful of small ones, sometimes anywhere up to 0xffffffff. */
export const partition: fc.Arbitrary<number> = fc.oneof(
  { arbitrary: fc.integer({ min: 0, max: 3 }), weight: 3 },
  { arbitrary: fc.integer({ min: 0, max: maxU32 }), weight: 1 },
  { arbitrary: fc.constantFrom(maxU32, maxU32 - 1), weight: 1 },
)

/** Path tricks and look-alikes: valid topics that must never escape the root or collide with one another. */
const trickyTopics = ['.', '..', '/', '\0', '../..', '/etc/passwd', 'a/../b', 'A', 'a', '~', '~2e', '~h', '~hx', 'CON', 'nul', '\\', ' ', 'a\\..\\..\\b', '%2e%2e', '.rockvisor', 'rockvisor.json']

/**
 * Any well-formed string of at least one UTF-16 unit, including path tricks ('.', '..', '/', '\0'), case variants,
 * escape look-alikes ('~2e', '~h...') and very long strings (around and far beyond the 200-character directory-name
 * limit, and beyond the 1024-byte topic limit). For properties of topic *names* (their directory encoding);
 * `topic` is the subset the index accepts.
 */
export const topicString: fc.Arbitrary<string> = fc
  .oneof(
    fc.constantFrom(...trickyTopics),
    fc.string({ unit: fc.constantFrom('a', 'A', '.', '/', '~', '\0', '-', '_', 'é'), minLength: 1, maxLength: 6 }),
    fc.string({ unit: 'grapheme', minLength: 1, maxLength: 30 }),
    codePoints(1, 60),
    fc.string({ unit: fc.constantFrom('a', 'z', '0', '_', '-'), minLength: 190, maxLength: 210 }),
    fc.string({ unit: fc.constantFrom('a', 'A', '~', 'é', '😀'), minLength: 60, maxLength: 80 }),
    codePoints(300, 1200),
  )
  .filter((s) => s.length >= 1 && s.isWellFormed())

/**
 * A topic the index accepts: a well-formed string of 1..`limits.topicBytes` UTF-8 bytes. Hostile on purpose:
 * traversal ('..', '../..', '/etc/passwd'), separators ('/', '\\'), NUL, reserved device names, escape look-alikes and
 * names long enough to be hashed. The index must keep each one inside its root, apart from every other topic.
 */
export const topic: fc.Arbitrary<string> = topicString.filter((s) => utf8Length(s) <= limits.topicBytes)

/**
 * A topic the index rejects with `InvalidInput` (field `topic`) before touching the disk: the empty string, strings
 * with a lone surrogate (not encodable as UTF-8), strings over `limits.topicBytes` UTF-8 bytes, and values that are
 * not strings at all.
 */
export const invalidTopic: fc.Arbitrary<unknown> = fc.oneof(
  fc.constant(''),
  fc
    .tuple(topic, fc.constantFrom('\ud800', '\udfff', '\udc00x', 'x\ud83d'), fc.nat())
    .map(([t, lone, at]) => `${t.slice(0, at % (t.length + 1))}${lone}${t.slice(at % (t.length + 1))}`)
    // Splitting a pair can make a lone surrogate too; all that matters is that the result is not well formed.
    .filter((s) => !s.isWellFormed()),
  fc.integer({ min: limits.topicBytes + 1, max: limits.topicBytes * 3 }).chain((n) => fc.constantFrom('a'.repeat(n), 'é'.repeat(Math.ceil(n / 2)), '../'.repeat(Math.ceil(n / 3)))),
  fc.constantFrom(undefined, null, 0, 7, true, ['t'], { topic: 't' }),
)

/** A closed time range `[startTs, endTs]`: usually start <= end, sometimes reversed (valid: it matches nothing). */
export const timeRange: fc.Arbitrary<readonly [number, number]> = fc.oneof(
  { arbitrary: fc.tuple(smallInt, smallInt).map(([a, b]) => [Math.min(a, b), Math.max(a, b)] as const), weight: 3 },
  { arbitrary: fc.tuple(safeNat, safeNat).map(([a, b]) => [Math.min(a, b), Math.max(a, b)] as const), weight: 1 },
  { arbitrary: fc.tuple(safeNat, safeNat), weight: 1 },
)

/**
 * A well-formed write token `<shard id>@<sequence>` (see `parseToken`): it parses, so a read given it is never
 * refused for its form. Given `shard`, tokens of that shard, at sequences 0..20 or any safe integer; otherwise shard
 * ids that look like real ones (`<topic dir>/<n>`). What a read after one does depends on the shard: a sequence the
 * shard has reached is met at once; one beyond it waits for it in reader mode, and is InvalidInput (field `after`)
 * in writer mode while the index's primary holds the shard (nothing would ever meet it); a token of another shard is
 * InvalidInput. For reads that must succeed, use the tokens your writes returned.
 */
export const token = (shard?: fc.Arbitrary<string>): fc.Arbitrary<string> =>
  fc
    .tuple(shard ?? fc.tuple(fc.constantFrom('t', 'orders', '~2e', '~h00'), fc.nat(7)).map(([dir, n]) => `${dir}/${n}`), fc.oneof(fc.nat(20), fc.maxSafeNat()))
    .map(([s, seq]) => `${s}@${seq}`)

/** Strings and values that are not write tokens: a read given one as `after` rejects with `InvalidInput` (field `after`). */
export const invalidToken: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom('', '@', '@1', 't/0', 't/0@', 't/0@-1', 't/0@1.5', 't/0@x', 't/0@9007199254740993', 't/0@ 1'),
  fc.string({ maxLength: 20 }).filter((s) => !/^.+@\d+$/.test(s)),
)

/** The freshness options of a read, as `ReadOptions` spells them. */
export type ReadOptionsValue =
  | { readonly consistency?: 'fresh' }
  | { readonly consistency: 'primary' }
  | { readonly consistency: 'bounded'; readonly maxStalenessMs?: number }
  | { readonly after: string; readonly consistency?: 'fresh' | 'bounded'; readonly maxStalenessMs?: number }

/**
 * Read options valid for a writer-mode index: the default (`{}`, fresh), `fresh`, `primary`, `bounded` with or
 * without a bound, and `after` a token drawn from `tokens` (alone or combined with fresh or bounded). Leave `tokens`
 * out for no `after`. For a reader-mode index use `readerReadOptions` (fresh and primary are writer-only).
 */
export const readOptions = (tokens?: fc.Arbitrary<string>): fc.Arbitrary<ReadOptionsValue> =>
  fc.oneof(
    fc.constantFrom<ReadOptionsValue>({}, { consistency: 'fresh' }, { consistency: 'primary' }, { consistency: 'bounded' }),
    fc.record({ consistency: fc.constant('bounded' as const), maxStalenessMs: fc.constantFrom(0, 1, 100, 1_000, 86_400_000) }),
    ...(tokens === undefined
      ? []
      : [
          fc.record(
            { after: tokens, consistency: fc.constantFrom('fresh' as const, 'bounded' as const), maxStalenessMs: fc.constantFrom(0, 1_000) },
            { requiredKeys: ['after'] },
          ) as fc.Arbitrary<ReadOptionsValue>,
        ]),
  )

/** Read options valid for a reader-mode index: the default (bounded), `bounded` with a bound, and `after` a token. */
export const readerReadOptions = (tokens?: fc.Arbitrary<string>): fc.Arbitrary<ReadOptionsValue> =>
  fc.oneof(
    fc.constantFrom<ReadOptionsValue>({}, { consistency: 'bounded' }),
    fc.record({ consistency: fc.constant('bounded' as const), maxStalenessMs: fc.constantFrom(0, 1, 100, 1_000, 86_400_000) }),
    ...(tokens === undefined ? [] : [fc.record({ after: tokens, consistency: fc.constant('bounded' as const), maxStalenessMs: fc.constantFrom(0, 1_000) }, { requiredKeys: ['after'] }) as fc.Arbitrary<ReadOptionsValue>]),
  )

/** The small domain a model-based run draws from, so that reads hit what writes wrote. */
export interface CollidingDomain {
  /** The msgIds written. Default `['a', 'b', 'c', 'd', 'e', 'f']`. */
  readonly msgIds?: readonly string[]
  /** Timestamps are drawn from [0, maxTimestamp]. Default 20. */
  readonly maxTimestamp?: number
  /** Segment ids are drawn from [0, segments - 1]. Default 2. */
  readonly segments?: number
  /** Offsets are drawn from [0, offsets - 1]. Default 4. */
  readonly offsets?: number
  /** Most metas in a batch. Default 4. */
  readonly maxBatch?: number
}

/** The defaults of {@link CollidingDomain}, resolved. */
export const collidingDefaults = { msgIds: ['a', 'b', 'c', 'd', 'e', 'f'], maxTimestamp: 20, segments: 2, offsets: 4, maxBatch: 4 } as const

/**
 * The domain with its defaults, checked: every msgId one the index accepts (a domain of msgIds it refuses would make
 * every write fail, and a run that checks answers against acknowledged writes would check nothing), the numbers
 * whole and in range. A bad domain is InvalidInput naming the field (`domain.msgIds[2]`, `domain.segments`).
 */
export const resolveDomain = (d: CollidingDomain = {}): Required<CollidingDomain> => {
  if (typeof d !== 'object' || d === null) throw new InvalidInput({ field: 'domain', message: 'domain: must be an object' })
  // (A field given as undefined takes its default, as one left out.)
  const r = {
    msgIds: d.msgIds ?? collidingDefaults.msgIds,
    maxTimestamp: d.maxTimestamp ?? collidingDefaults.maxTimestamp,
    segments: d.segments ?? collidingDefaults.segments,
    offsets: d.offsets ?? collidingDefaults.offsets,
    maxBatch: d.maxBatch ?? collidingDefaults.maxBatch,
  }
  if (!Array.isArray(r.msgIds) || r.msgIds.length === 0) throw new InvalidInput({ field: 'domain.msgIds', message: 'domain.msgIds: must be a non-empty array of msgIds' })
  r.msgIds.forEach((msgId, i) => {
    try {
      checkBatch([{ msgId, timestamp: 0, segmentId: 0, offset: 0, msgLen: 0 }])
    } catch (e) {
      throw new InvalidInput({ field: `domain.msgIds[${i}]`, message: `domain.msgIds[${i}]: not a msgId the index accepts (${e instanceof Error ? e.message : String(e)})` })
    }
  })
  const whole = (field: string, value: unknown, min: number, max: number): void => {
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
      throw new InvalidInput({ field: `domain.${field}`, message: `domain.${field}: must be an integer in [${min}, ${max}], got ${String(value)}` })
    }
  }
  // (A retention command's bound goes up to maxTimestamp + 1, which must be a safe integer too.)
  whole('maxTimestamp', r.maxTimestamp, 0, Number.MAX_SAFE_INTEGER - 1)
  whole('segments', r.segments, 1, limits.maxU32 + 1)
  whole('offsets', r.offsets, 1, Number.MAX_SAFE_INTEGER)
  whole('maxBatch', r.maxBatch, 1, limits.batchMetas)
  return r
}

/** A valid meta of a small domain: msgIds, timestamps and places repeat, so writes replace each other. */
export const collidingMeta = (domain?: CollidingDomain): fc.Arbitrary<MessageMeta> => {
  const d = resolveDomain(domain)
  return fc.record({
    msgId: fc.constantFrom(...d.msgIds),
    timestamp: fc.integer({ min: 0, max: d.maxTimestamp }),
    segmentId: fc.integer({ min: 0, max: d.segments - 1 }),
    offset: fc.integer({ min: 0, max: d.offsets - 1 }),
    msgLen: fc.integer({ min: 0, max: 100 }),
  })
}

/** A valid, non-empty batch of a small domain (no msgId and no place twice in it). */
export const collidingBatch = (domain?: CollidingDomain): fc.Arbitrary<MessageMeta[]> =>
  fc.uniqueArray(collidingMeta(domain), { comparator: sameMessageOrPlace, minLength: 1, maxLength: resolveDomain(domain).maxBatch })

/** One read of a partition, as the model answers it (see `model.answer`). */
export type Query =
  | { readonly kind: 'getByMsgId'; readonly msgId: string }
  | { readonly kind: 'getMsgIdBySegmentOffset'; readonly segmentId: number; readonly offset: number }
  | { readonly kind: 'getRangeByTime'; readonly startTs: number; readonly endTs: number }
  | { readonly kind: 'scanByTime'; readonly startTs: number; readonly endTs: number; readonly limit?: number }

/** A read of a small domain: the msgIds, places and time ranges of `collidingMeta`, plus one msgId never written. */
export const query = (domain?: CollidingDomain): fc.Arbitrary<Query> => {
  const d = resolveDomain(domain)
  const ts = fc.integer({ min: 0, max: d.maxTimestamp })
  return fc.oneof(
    fc.constantFrom(...d.msgIds, '~never-written~').map((id) => ({ kind: 'getByMsgId' as const, msgId: id })),
    fc.record({ kind: fc.constant('getMsgIdBySegmentOffset' as const), segmentId: fc.integer({ min: 0, max: d.segments - 1 }), offset: fc.integer({ min: 0, max: d.offsets - 1 }) }),
    fc.record({ kind: fc.constant('getRangeByTime' as const), startTs: ts, endTs: ts }),
    fc.record({ kind: fc.constant('scanByTime' as const), startTs: ts, endTs: ts, limit: fc.option(fc.integer({ min: 0, max: 4 }), { nil: undefined }) }).map(
      ({ limit, ...q }) => (limit === undefined ? q : { ...q, limit }),
    ),
  )
}
