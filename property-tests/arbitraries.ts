/**
 * Shared fast-check arbitraries for rockvisor's property tests.
 *
 * They are biased towards collisions on purpose: small alphabets for msgIds and small integers for timestamps,
 * segment ids and offsets, so that replacements, duplicate timestamps and tie-breaks happen in most runs, while the
 * full ranges (u32, safe integers, any Unicode) still show up to exercise the encodings' extremes.
 */
import { fc } from '@fast-check/vitest'
import type { MessageMeta } from '../src/meta.js'

/** Largest u32: the top of the segmentId, msgLen and partition ranges. */
export const maxU32 = 0xffff_ffff

/** Longest msgId the index accepts, in UTF-8 bytes (restated here so the arbitraries do not depend on src). */
const msgIdMaxBytes = 1024

const utf8Length = (s: string): number => Buffer.byteLength(s, 'utf8')

/** Small integers 0..20: drawn often so that values repeat within and across batches. */
export const smallIntArb: fc.Arbitrary<number> = fc.integer({ min: 0, max: 20 })

/** A timestamp or an offset: a safe integer >= 0, often small (duplicates), sometimes anywhere up to 2^53 - 1. */
export const safeNatArb: fc.Arbitrary<number> = fc.oneof(
  { arbitrary: smallIntArb, weight: 3 },
  { arbitrary: fc.maxSafeNat(), weight: 1 },
  { arbitrary: fc.constantFrom(Number.MAX_SAFE_INTEGER, 0x1_0000_0000, 0xffff_ffff), weight: 1 },
)

/** A u32 (segmentId, msgLen): often small, sometimes anywhere up to 0xffffffff. */
export const u32Arb: fc.Arbitrary<number> = fc.oneof(
  { arbitrary: smallIntArb, weight: 3 },
  { arbitrary: fc.integer({ min: 0, max: maxU32 }), weight: 1 },
  { arbitrary: fc.constant(maxU32), weight: 1 },
)

/**
 * A valid msgId: a well-formed (no lone surrogate) string of 1..40 UTF-16 units and at most 1024 UTF-8 bytes.
 * Mixes arbitrary graphemes, arbitrary code points (including `\0` and astral ones) and a 3-letter alphabet that
 * makes the same id come up again and again.
 */
export const msgIdArb: fc.Arbitrary<string> = fc
  .oneof(
    { arbitrary: fc.string({ unit: fc.constantFrom('a', 'b', 'é'), minLength: 1, maxLength: 2 }), weight: 4 },
    { arbitrary: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 12 }), weight: 2 },
    { arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 40 }), weight: 1 },
    { arbitrary: fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 40 }), weight: 1 },
  )
  .filter((s) => s.length >= 1 && s.length <= 40 && s.isWellFormed() && utf8Length(s) <= msgIdMaxBytes)

/** A valid meta: every field within its documented range (see `MessageMeta` in src/meta.ts). */
export const metaArb: fc.Arbitrary<MessageMeta> = fc.record({
  msgId: msgIdArb,
  timestamp: safeNatArb,
  segmentId: u32Arb,
  offset: safeNatArb,
  msgLen: u32Arb,
})

/** True when two metas name the same message (msgId) or the same place in the log (segmentId, offset). */
export const sameMessageOrPlace = (a: MessageMeta, b: MessageMeta): boolean =>
  a.msgId === b.msgId || (a.segmentId === b.segmentId && a.offset === b.offset)

/**
 * A valid, non-empty batch of 1..12 metas: no msgId twice and no (segmentId, offset) twice, as `checkBatch` requires.
 * (Empty batches are left out on purpose: they write nothing, not even a sequence number.)
 */
export const batchArb: fc.Arbitrary<MessageMeta[]> = fc.uniqueArray(metaArb, {
  comparator: sameMessageOrPlace,
  minLength: 1,
  maxLength: 12,
})

/** A partition number (u32): often one of a handful of small ones, sometimes anywhere up to 0xffffffff. */
export const partitionArb: fc.Arbitrary<number> = fc.oneof(
  { arbitrary: fc.integer({ min: 0, max: 3 }), weight: 3 },
  { arbitrary: fc.integer({ min: 0, max: maxU32 }), weight: 1 },
  { arbitrary: fc.constantFrom(maxU32, maxU32 - 1), weight: 1 },
)

/**
 * A topic name: any well-formed string of at least one UTF-16 unit, including path tricks ('.', '..', '/', '\0'),
 * case variants, escape look-alikes ('~2e', '~h...') and very long strings (around and far beyond the 200-character
 * directory-name limit, in ASCII and multi-byte characters).
 */
export const topicArb: fc.Arbitrary<string> = fc
  .oneof(
    fc.constantFrom('.', '..', '/', '\0', '../..', '/etc/passwd', 'a/../b', 'A', 'a', '~', '~2e', '~h', '~hx', 'CON', 'nul', '\\', ' '),
    fc.string({ unit: fc.constantFrom('a', 'A', '.', '/', '~', '\0', '-', '_', 'é'), minLength: 1, maxLength: 6 }),
    fc.string({ unit: 'grapheme', minLength: 1, maxLength: 30 }),
    fc.string({ unit: 'binary', minLength: 1, maxLength: 60 }),
    fc.string({ unit: fc.constantFrom('a', 'z', '0', '_', '-'), minLength: 190, maxLength: 210 }),
    fc.string({ unit: fc.constantFrom('a', 'A', '~', 'é', '😀'), minLength: 60, maxLength: 80 }),
    fc.string({ unit: 'binary', minLength: 300, maxLength: 1200 }),
  )
  .filter((s) => s.length >= 1 && s.isWellFormed())
