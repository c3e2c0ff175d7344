/**
 * The edges of the key encoding (src/keys.ts) and of write tokens (src/tokens.ts) that the round-trip properties never
 * reach: keys that are not well formed, the last partition's range, epoch slots, numbers past 32 bits, an identity
 * entry read back, and tokens that are almost tokens. Each test pins one exact value, so a changed comparison, bound
 * or constant fails it.
 */
import { describe, expect, it } from 'vitest'
import {
  View,
  allEpochKeys,
  decodeIdEntry,
  decodeKey,
  decodeSequence,
  epochKey,
  epochSlots,
  identityKey,
  identityValue,
  idKey,
  idKeyOf,
  placeOfSegmentOffsetKey,
  rangeEnd,
  rangeStart,
  readIdentity,
  segmentOffsetKey,
  segmentOffsetOfTimeKey,
  sequenceKey,
  sequenceValue,
  timeKey,
  timeKeyMax,
} from '../src/keys.js'
import { InvalidInput } from '../src/errors.js'
import { makeToken, parseToken } from '../src/tokens.js'

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')
const bytes = (h: string): Uint8Array => Uint8Array.from(Buffer.from(h, 'hex'))

describe('decodeKey given malformed keys', () => {
  it('should refuse a key of an unknown view byte, naming it in hex', () => {
    expect(() => decodeKey(bytes('0400000001'))).toThrow(/^not a rockvisor key: 0400000001$/)
    expect(() => decodeKey(bytes('0000000001'))).toThrow('not a rockvisor key: 0000000001')
  })

  it('should refuse by-time and by-segment-offset keys one byte too short or too long', () => {
    const t = timeKey(3, 10, 2, 1)
    const so = segmentOffsetKey(3, { segmentId: 2, offset: 1 })
    expect(t.length).toBe(25)
    expect(so.length).toBe(17)
    for (const k of [t.subarray(0, 24), Buffer.concat([t, Buffer.of(0)]), so.subarray(0, 16), Buffer.concat([so, Buffer.of(0)])]) {
      expect(() => decodeKey(k)).toThrow(`not a rockvisor key: ${hex(k)}`)
    }
  })

  it('should refuse a key too short to hold a partition with a RangeError', () => {
    for (const k of [bytes(''), bytes('01'), bytes('01000000')]) expect(() => decodeKey(k)).toThrow(RangeError)
    expect(() => decodeKey(bytes('010000'))).toThrow('reading 4 bytes at 1 of a 3-byte buffer')
  })

  it('should read a by-id key with an empty msgId (exactly 5 bytes)', () => {
    expect(decodeKey(rangeStart(View.byId, 7))).toEqual({ view: 'byId', partition: 7, msgId: '' })
    expect(decodeKey(idKey(0xffff_ffff, 'm'))).toEqual({ view: 'byId', partition: 0xffff_ffff, msgId: 'm' })
  })

  it('should refuse a by-id key whose msgId is not UTF-8', () => {
    expect(() => decodeKey(bytes('0100000001ff'))).toThrow(TypeError)
  })

  it('should tell the sequence and epoch keys from 4-byte keys that only resemble them', () => {
    expect(decodeKey(sequenceKey)).toEqual({ view: 'sequence' })
    expect(decodeKey(bytes('00657000'))).toEqual({ view: 'epoch', slot: 0 })
    expect(decodeKey(bytes('0065703f'))).toEqual({ view: 'epoch', slot: 63 })
    // Slot 64 is past the last slot; a wrong byte anywhere is not an epoch key nor the sequence key.
    for (const h of ['00657040', '00657100', '00667000', '01657000', '00737371', '00736571ff', '00657005ff', '007365']) {
      expect(() => decodeKey(bytes(h)), h).toThrow()
    }
  })
})

describe('the identity key', () => {
  it("should be 00 'i' 'd', decode as the identity, and hold '<shard id> of <count>' in UTF-8", () => {
    expect(hex(identityKey)).toBe('006964')
    expect(decodeKey(identityKey)).toEqual({ view: 'identity' })
    for (const h of ['006965', '016964', '00696400', '0069']) expect(() => decodeKey(bytes(h)), h).toThrow()
    expect(Buffer.from(identityValue('t~c3~a9/3', 16)).toString('utf8')).toBe('t~c3~a9/3 of 16')
    // Outside every view's range: a retention's range deletion never reaches it.
    for (const view of [View.byId, View.byTime, View.bySegmentOffset]) expect(Buffer.compare(identityKey, rangeStart(view, 0))).toBe(-1)
  })
})

describe('an identity entry read back', () => {
  it('should give its text, at most 300 characters, and the shard it names, the text before the last " of "', () => {
    expect(readIdentity(identityValue('t~c3~a9/3', 16))).toEqual({ text: 't~c3~a9/3 of 16', shard: 't~c3~a9/3' })
    expect(readIdentity(Buffer.from('a of b/1 of 4'))).toEqual({ text: 'a of b/1 of 4', shard: 'a of b/1' })
    // An entry that names no count: all of it is the shard.
    expect(readIdentity(Buffer.from('t/3'))).toEqual({ text: 't/3', shard: 't/3' })
    expect(readIdentity(Buffer.from(' of 4'))).toEqual({ text: ' of 4', shard: '' })
    // Anything at all, bounded.
    const long = 'x'.repeat(400)
    expect(readIdentity(Uint8Array.from(Buffer.from(long)))).toEqual({ text: 'x'.repeat(300), shard: 'x'.repeat(300) })
  })
})

describe('epoch keys', () => {
  it('should keep epochSlots slots, slot e % epochSlots for epoch e', () => {
    expect(epochSlots).toBe(64)
    expect(allEpochKeys.length).toBe(64)
    expect(hex(allEpochKeys[0]!)).toBe('00657000')
    expect(hex(allEpochKeys[63]!)).toBe('0065703f')
    expect(epochKey(0)).toBe(allEpochKeys[0])
    expect(epochKey(65)).toBe(allEpochKeys[1])
    expect(epochKey(127)).toBe(allEpochKeys[63])
    expect(hex(sequenceKey)).toBe('00736571')
  })
})

describe('exact encodings', () => {
  it('should write numbers past 32 bits big-endian, high word first', () => {
    const ts = 0x1_2345_6789
    expect(hex(timeKey(0x0a0b0c0d, ts, 0xdeadbeef, 2 ** 40 + 5))).toBe('02' + '0a0b0c0d' + '0000000123456789' + 'deadbeef' + '0000010000000005')
    expect(hex(timeKey(1, 2))).toBe('02' + '00000001' + '0000000000000002' + '00000000' + '0000000000000000')
    expect(hex(timeKeyMax(1, 2))).toBe('02' + '00000001' + '0000000000000002' + 'ffffffff' + '001fffffffffffff')
    expect(hex(segmentOffsetKey(1, { segmentId: 0x01020304, offset: 2 ** 53 - 1 }))).toBe('03' + '00000001' + '01020304' + '001fffffffffffff')
    expect(hex(sequenceValue(2 ** 32 + 1))).toBe('0000000100000001')
    expect(decodeSequence(sequenceValue(2 ** 52 + 3))).toBe(2 ** 52 + 3)
  })

  it('should decode the sequence of a shard never written as 0', () => {
    expect(decodeSequence(undefined)).toBe(0)
    expect(decodeSequence(null)).toBe(0)
  })

  it('should write the msgId straight into a by-id key after the 5-byte header', () => {
    expect(hex(idKeyOf(2, 'é', 2))).toBe('01' + '00000002' + 'c3a9')
    expect(hex(idKey(2, 'é'))).toBe('01' + '00000002' + 'c3a9')
  })

  it('should end the last partition of a view at the next view byte, and any other at the next partition', () => {
    expect(hex(rangeEnd(View.byTime, 0xffff_ffff))).toBe('03')
    expect(hex(rangeEnd(View.byTime, 0xffff_fffe))).toBe('02ffffffff')
    expect(hex(rangeStart(View.bySegmentOffset, 5))).toBe('0300000005')
    expect(hex(rangeEnd(View.byId, 5))).toBe('0100000006')
  })

  it('should read the place a key addresses, and a by-id value field by field', () => {
    expect(placeOfSegmentOffsetKey(segmentOffsetKey(9, { segmentId: 0xffff_ffff, offset: 2 ** 40 }))).toEqual({ segmentId: 0xffff_ffff, offset: 2 ** 40 })
    expect(segmentOffsetOfTimeKey(timeKey(9, 1, 7, 2 ** 33 + 1))).toEqual({ segmentId: 7, offset: 2 ** 33 + 1 })
    const v = bytes('0000000100000002' + '00000003' + '0000000400000005' + '00000006')
    expect(decodeIdEntry('m', v)).toEqual({ msgId: 'm', timestamp: 2 ** 32 + 2, segmentId: 3, offset: 4 * 2 ** 32 + 5, msgLen: 6 })
    expect(() => decodeIdEntry('m', v.subarray(0, 23))).toThrow(RangeError)
  })
})

describe('write tokens', () => {
  it('should print and read back shard@sequence, the shard being everything before the last @', () => {
    expect(makeToken('orders/3', 1042)).toBe('orders/3@1042')
    expect(parseToken('orders/3@1042')).toEqual({ shard: 'orders/3', sequence: 1042 })
    expect(parseToken('a@b/1@7', 'a@b/1')).toEqual({ shard: 'a@b/1', sequence: 7 })
    expect(parseToken('s@0')).toEqual({ shard: 's', sequence: 0 })
    expect(parseToken(`s@${Number.MAX_SAFE_INTEGER}`)).toEqual({ shard: 's', sequence: Number.MAX_SAFE_INTEGER })
  })

  it('should refuse what is not a token with InvalidInput on field after, quoting it', () => {
    const bad: unknown[] = ['@5', 's@', 's@-1', 's@1.5', 's@1e3', 's@ 1', 's@1 ', 's@0x10', 's5', '', 's@9007199254740992', 5, null, undefined, { s: 1 }]
    for (const token of bad) {
      const err = (() => {
        try {
          parseToken(token)
        } catch (e) {
          return e
        }
        return undefined
      })()
      expect(err, String(token)).toBeInstanceOf(InvalidInput)
      expect(err).toMatchObject({ field: 'after' })
      expect((err as Error).message).toBe(`after: not a write token: ${JSON.stringify(token)?.slice(0, 80)}`)
    }
    // The quote is cut at 80 characters.
    const long = `s@${'x'.repeat(200)}`
    const err = (() => {
      try {
        parseToken(long)
      } catch (e) {
        return e as Error
      }
      throw new Error('parsed')
    })()
    expect(err.message).toBe(`after: not a write token: "s@${'x'.repeat(77)}`)
  })

  it('should refuse a token of another shard, naming both', () => {
    expect(() => parseToken('orders/3@5', 'orders/4')).toThrow('after: the token is for shard orders/3, but this read goes to shard orders/4')
    expect(() => parseToken('orders/3@5', 'orders/4')).toThrow(InvalidInput)
    try {
      parseToken('orders/3@5', 'orders/4')
    } catch (e) {
      expect(e).toMatchObject({ field: 'after' })
    }
    expect(parseToken('orders/3@5', 'orders/3')).toEqual({ shard: 'orders/3', sequence: 5 })
  })
})
