/**
 * Properties of the key/value encodings (src/keys.ts) and of topic directory names (src/layout.ts): decoding inverts
 * encoding, distinct addresses never share a (directory, key) pair, byte order is numeric tuple order, and every
 * (view, partition) is one contiguous key range that no other (view, partition) reaches into.
 */
import { describe, expect } from 'vitest'
import { fc, test } from '@fast-check/vitest'
import {
  View,
  decodeIdEntry,
  decodeKey,
  decodeSegmentOffsetEntry,
  decodeTimeEntry,
  idKey,
  idValue,
  rangeEnd,
  rangeStart,
  segmentOffsetKey,
  segmentOffsetOfTimeKey,
  segmentOffsetValue,
  sequenceKey,
  timeKey,
  timeKeyMax,
  timeValue,
} from '../src/keys.js'
import { topicDirName, topicOfDirName } from '../src/layout.js'
import { checkTextBytes, limits } from '../src/meta.js'
import { arbitraries } from '../src/testing/index.js'

const { maxU32, meta: metaArb, msgId: msgIdArb, partition: partitionArb, safeNat: safeNatArb, topicString: topicArb, u32: u32Arb } = arbitraries

const numRuns = 300

/** -1, 0 or 1: the lexicographic comparison of two equally long number tuples. */
const compareTuples = (a: readonly number[], b: readonly number[]): number => {
  for (let i = 0; i < a.length; i++) {
    if (a[i]! < b[i]!) return -1
    if (a[i]! > b[i]!) return 1
  }
  return 0
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')

/** start <= key < end, in byte order. */
const inRange = (key: Uint8Array, start: Uint8Array, end: Uint8Array): boolean =>
  Buffer.compare(key, start) >= 0 && Buffer.compare(key, end) < 0

type ViewName = 'byId' | 'byTime' | 'bySegmentOffset'
const viewNames: readonly ViewName[] = ['byId', 'byTime', 'bySegmentOffset']

/** What one key addresses inside a topic's shard: a view entry of a partition. */
type Entry =
  | { readonly view: 'byId'; readonly msgId: string }
  | { readonly view: 'byTime'; readonly timestamp: number; readonly segmentId: number; readonly offset: number }
  | { readonly view: 'bySegmentOffset'; readonly segmentId: number; readonly offset: number }

const entryArb: fc.Arbitrary<Entry> = fc.oneof(
  fc.record({ view: fc.constant('byId' as const), msgId: msgIdArb }),
  fc.record({ view: fc.constant('byTime' as const), timestamp: safeNatArb, segmentId: u32Arb, offset: safeNatArb }),
  fc.record({ view: fc.constant('bySegmentOffset' as const), segmentId: u32Arb, offset: safeNatArb }),
)

const encodeEntry = (partition: number, e: Entry): Buffer => {
  switch (e.view) {
    case 'byId':
      return idKey(partition, e.msgId)
    case 'byTime':
      return timeKey(partition, e.timestamp, e.segmentId, e.offset)
    case 'bySegmentOffset':
      return segmentOffsetKey(partition, e)
  }
}

/** A small pool of partitions (including both ends of the u32 range) so that equal and adjacent ones meet often. */
const nearbyPartitionArb = fc.constantFrom(0, 1, 2, 255, 256, 0x1_00_00, maxU32 - 1, maxU32)

/** Entries from small pools, so that two of them often differ in a single component. */
const nearbyEntryArb: fc.Arbitrary<Entry> = fc.oneof(
  fc.record({ view: fc.constant('byId' as const), msgId: fc.constantFrom('a', 'b', 'ab', 'a\0', '\0', 'é', 'e\u0301', '😀', 'aa') }),
  fc.record({
    view: fc.constant('byTime' as const),
    timestamp: fc.constantFrom(0, 1, 256, maxU32, 0x1_0000_0000, Number.MAX_SAFE_INTEGER),
    segmentId: fc.constantFrom(0, 1, 256, maxU32),
    offset: fc.constantFrom(0, 1, 256, maxU32, 0x1_0000_0000, Number.MAX_SAFE_INTEGER),
  }),
  fc.record({
    view: fc.constant('bySegmentOffset' as const),
    segmentId: fc.constantFrom(0, 1, 256, maxU32),
    offset: fc.constantFrom(0, 1, 256, maxU32, 0x1_0000_0000, Number.MAX_SAFE_INTEGER),
  }),
)

describe('key encoding round-trips', () => {
  test.prop([partitionArb, msgIdArb], { numRuns })('decodeKey inverts idKey', (partition, msgId) => {
    expect(decodeKey(idKey(partition, msgId))).toEqual({ view: 'byId', partition, msgId })
  })

  test.prop([partitionArb, msgIdArb], { numRuns })(
    'idKey is the view byte, the partition (big-endian u32) and the UTF-8 bytes of the msgId, sized by checkTextBytes',
    (partition, msgId) => {
      const utf8 = new TextEncoder().encode(msgId)
      const be = Buffer.alloc(4)
      be.writeUInt32BE(partition)
      expect(idKey(partition, msgId)).toEqual(Buffer.concat([Buffer.of(0x01), be, utf8]))
      expect(checkTextBytes('msgId', msgId, limits.msgIdBytes)).toBe(utf8.length)
    },
  )

  test.prop([partitionArb, safeNatArb, u32Arb, safeNatArb], { numRuns })(
    'decodeKey inverts timeKey, and segmentOffsetOfTimeKey reads its place',
    (partition, timestamp, segmentId, offset) => {
      const key = timeKey(partition, timestamp, segmentId, offset)
      expect(decodeKey(key)).toEqual({ view: 'byTime', partition, timestamp, segmentId, offset })
      expect(segmentOffsetOfTimeKey(key)).toEqual({ segmentId, offset })
    },
  )

  test.prop([partitionArb, u32Arb, safeNatArb], { numRuns })(
    'decodeKey inverts segmentOffsetKey',
    (partition, segmentId, offset) => {
      expect(decodeKey(segmentOffsetKey(partition, { segmentId, offset }))).toEqual({
        view: 'bySegmentOffset',
        partition,
        segmentId,
        offset,
      })
    },
  )

  test('decodeKey recognises the sequence key', () => {
    expect(decodeKey(sequenceKey)).toEqual({ view: 'sequence' })
  })

  test.prop([partitionArb, metaArb], { numRuns })('the entry decoders invert the value encoders', (partition, m) => {
    expect(decodeIdEntry(m.msgId, idValue(m))).toEqual(m)
    expect(decodeTimeEntry(timeKey(partition, m.timestamp, m.segmentId, m.offset), timeValue(m))).toEqual(m)
    expect(decodeSegmentOffsetEntry(segmentOffsetKey(partition, m), segmentOffsetValue(m))).toEqual(m)
  })

  test.prop([partitionArb, metaArb], { numRuns })(
    'decoders read keys and values at a non-zero byte offset of a shared buffer',
    (partition, m) => {
      // RocksDB bindings and Buffer pools hand out views into larger buffers: decoding must honour byteOffset.
      const embed = (b: Uint8Array): Uint8Array => {
        const big = new Uint8Array(b.length + 7)
        big.fill(0xee)
        big.set(b, 3)
        return big.subarray(3, 3 + b.length)
      }
      expect(decodeIdEntry(m.msgId, embed(idValue(m)))).toEqual(m)
      expect(decodeTimeEntry(embed(timeKey(partition, m.timestamp, m.segmentId, m.offset)), embed(timeValue(m)))).toEqual(m)
      expect(decodeSegmentOffsetEntry(embed(segmentOffsetKey(partition, m)), embed(segmentOffsetValue(m)))).toEqual(m)
      expect(decodeKey(embed(idKey(partition, m.msgId)))).toEqual({ view: 'byId', partition, msgId: m.msgId })
    },
  )
})

describe('topic directory names', () => {
  test.prop([topicArb], { numRuns })('are safe path components of at most 200 characters', (topic) => {
    const dir = topicDirName(topic)
    expect(dir).toMatch(/^[a-z0-9_~-]+$/)
    expect(dir).not.toBe('.')
    expect(dir).not.toBe('..')
    expect(dir.length).toBeLessThanOrEqual(200)
  })

  test.prop([topicArb], { numRuns })('topicOfDirName inverts topicDirName unless the name is hashed', (topic) => {
    const dir = topicDirName(topic)
    // Independently: every UTF-8 byte outside [a-z0-9_-] costs three characters ('~' + two hex digits), others one.
    const escapedLength = [...Buffer.from(topic, 'utf8')].reduce(
      (n, byte) => n + (/[a-z0-9_-]/.test(String.fromCharCode(byte)) ? 1 : 3),
      0,
    )
    if (escapedLength <= 200) {
      expect(dir.length).toBe(escapedLength)
      expect(topicOfDirName(dir)).toBe(topic)
    } else {
      expect(dir).toMatch(/^~h[0-9a-f]{64}$/)
      expect(topicOfDirName(dir)).toBeUndefined()
    }
  })

  test.prop([fc.uniqueArray(topicArb, { minLength: 2, maxLength: 20 })], { numRuns })(
    'distinct topics get distinct directory names',
    (topics) => {
      expect(new Set(topics.map(topicDirName)).size).toBe(topics.length)
    },
  )

  // Names over the directory alphabet, built from plain characters and '~xx' escapes of any byte: most are not
  // topicDirName's output ('~61' is 'a' escaped needlessly, '~ff' is not UTF-8, 201 plain characters would be hashed).
  const dirLikeNameArb = fc
    .array(
      fc.oneof(
        fc.constantFrom('a', 'z', '0', '9', '_', '-'),
        fc.integer({ min: 0, max: 255 }).map((b) => `~${b.toString(16).padStart(2, '0')}`),
      ),
      { minLength: 1, maxLength: 12 },
    )
    .map((pieces) => pieces.join(''))
  const longDirLikeNameArb = fc.string({ unit: fc.constantFrom('a', '0', '_'), minLength: 195, maxLength: 210 })

  test.prop([fc.oneof(dirLikeNameArb, longDirLikeNameArb)], { numRuns })(
    'topicOfDirName answers undefined for names topicDirName never produces ("foreign" names)',
    (name) => {
      const topic = topicOfDirName(name)
      if (topic !== undefined) expect(topicDirName(topic)).toBe(name)
    },
  )

  test('case variants and path tricks stay apart', () => {
    const topics = ['a', 'A', '.', '..', '...', '/', '\0', '~', '~2e', '~h', 'a/b', 'a~2fb', '~7e', 'ß', 'SS', 'ss']
    expect(new Set(topics.map(topicDirName)).size).toBe(topics.length)
  })
})

describe('injectivity across (topic, partition, view)', () => {
  const addressArb = fc.record({
    topic: fc.oneof(fc.constantFrom('a', 'A', 'b', '.', '..', 'a~', 'a~7e'), topicArb),
    partition: fc.oneof(nearbyPartitionArb, partitionArb),
    entry: fc.oneof(nearbyEntryArb, entryArb),
  })
  type Address = typeof addressArb extends fc.Arbitrary<infer A> ? A : never
  const canonical = (a: Address): string => JSON.stringify([a.topic, a.partition, a.entry])

  test.prop([fc.uniqueArray(addressArb, { selector: canonical, minLength: 2, maxLength: 40 })], { numRuns })(
    'distinct addresses give distinct (topic directory, key) pairs',
    (addresses) => {
      const encoded = addresses.map((a) => `${topicDirName(a.topic)}/${hex(encodeEntry(a.partition, a.entry))}`)
      expect(new Set(encoded).size).toBe(addresses.length)
    },
  )

  test.prop([addressArb, addressArb], { numRuns })('equal (directory, key) pairs only for equal addresses', (a, b) => {
    const same = topicDirName(a.topic) === topicDirName(b.topic) && encodeEntry(a.partition, a.entry).equals(encodeEntry(b.partition, b.entry))
    expect(same).toBe(canonical(a) === canonical(b))
  })

  test.prop([partitionArb, entryArb], { numRuns })('no view key equals the sequence key', (partition, entry) => {
    expect(Buffer.from(encodeEntry(partition, entry)).equals(Buffer.from(sequenceKey))).toBe(false)
  })
})

describe('byte order is numeric order', () => {
  const timeTupleArb = fc.tuple(fc.oneof(nearbyPartitionArb, partitionArb), safeNatArb, u32Arb, safeNatArb)
  const soTupleArb = fc.tuple(fc.oneof(nearbyPartitionArb, partitionArb), u32Arb, safeNatArb)

  test.prop([safeNatArb, u32Arb, safeNatArb, safeNatArb, u32Arb, safeNatArb, partitionArb], { numRuns })(
    'timeKey within a partition compares like (timestamp, segmentId, offset)',
    (ts1, s1, o1, ts2, s2, o2, p) => {
      expect(Math.sign(Buffer.compare(timeKey(p, ts1, s1, o1), timeKey(p, ts2, s2, o2)))).toBe(
        compareTuples([ts1, s1, o1], [ts2, s2, o2]),
      )
    },
  )

  test.prop([timeTupleArb, timeTupleArb], { numRuns })(
    'timeKey compares like (partition, timestamp, segmentId, offset)',
    (a, b) => {
      expect(Math.sign(Buffer.compare(timeKey(...a), timeKey(...b)))).toBe(compareTuples(a, b))
    },
  )

  test.prop([soTupleArb, soTupleArb], { numRuns })('segmentOffsetKey compares like (partition, segmentId, offset)', (a, b) => {
    const key = ([p, segmentId, offset]: readonly [number, number, number]) => segmentOffsetKey(p, { segmentId, offset })
    expect(Math.sign(Buffer.compare(key(a), key(b)))).toBe(compareTuples(a, b))
  })

  test.prop([fc.oneof(nearbyPartitionArb, partitionArb), fc.oneof(nearbyPartitionArb, partitionArb), msgIdArb, msgIdArb], { numRuns })(
    'idKey compares like (partition, UTF-8 bytes of msgId)',
    (p1, p2, id1, id2) => {
      const expected = p1 !== p2 ? Math.sign(p1 - p2) : Math.sign(Buffer.compare(Buffer.from(id1, 'utf8'), Buffer.from(id2, 'utf8')))
      expect(Math.sign(Buffer.compare(idKey(p1, id1), idKey(p2, id2)))).toBe(expected)
    },
  )

  test.prop([partitionArb, safeNatArb, u32Arb, safeNatArb, safeNatArb], { numRuns })(
    'timeKeyMax(ts) bounds every key of ts from above and stays below every key of a later timestamp',
    (p, ts, segmentId, offset, later) => {
      expect(Buffer.compare(timeKey(p, ts, segmentId, offset), timeKeyMax(p, ts))).toBeLessThanOrEqual(0)
      expect(Buffer.compare(timeKey(p, ts), timeKey(p, ts, segmentId, offset))).toBeLessThanOrEqual(0)
      if (later > ts) expect(Buffer.compare(timeKeyMax(p, ts), timeKey(p, later))).toBeLessThan(0)
    },
  )
})

describe('(view, partition) ranges never interleave', () => {
  const viewArb = fc.constantFrom(...viewNames)
  const anyPartitionArb = fc.oneof(nearbyPartitionArb, partitionArb)

  test.prop([anyPartitionArb, fc.oneof(nearbyEntryArb, entryArb), anyPartitionArb, viewArb], { numRuns })(
    "a key lies in its own (view, partition) range and in no other's",
    (p, entry, otherP, otherView) => {
      const key = encodeEntry(p, entry)
      expect(inRange(key, rangeStart(View[entry.view], p), rangeEnd(View[entry.view], p))).toBe(true)
      const own = otherP === p && otherView === entry.view
      expect(inRange(key, rangeStart(View[otherView], otherP), rangeEnd(View[otherView], otherP))).toBe(own)
    },
  )

  test.prop([viewArb, anyPartitionArb, viewArb, anyPartitionArb], { numRuns })(
    'ranges are disjoint and ordered by (view, partition)',
    (v1, p1, v2, p2) => {
      const [s1, e1, s2, e2] = [rangeStart(View[v1], p1), rangeEnd(View[v1], p1), rangeStart(View[v2], p2), rangeEnd(View[v2], p2)]
      expect(Buffer.compare(s1, e1)).toBeLessThan(0)
      const order = compareTuples([View[v1], p1], [View[v2], p2])
      if (order < 0) expect(Buffer.compare(e1, s2)).toBeLessThanOrEqual(0)
      else if (order > 0) expect(Buffer.compare(e2, s1)).toBeLessThanOrEqual(0)
      else expect([s1.equals(s2), e1.equals(e2)]).toEqual([true, true])
    },
  )

  test.prop([viewArb, anyPartitionArb], { numRuns })('the sequence key lies outside every range', (v, p) => {
    expect(inRange(Buffer.from(sequenceKey), rangeStart(View[v], p), rangeEnd(View[v], p))).toBe(false)
  })
})
