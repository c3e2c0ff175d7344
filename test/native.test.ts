/**
 * One seek by the binding's native iterator calls (src/native-seek.ts), as `StorageHandle.firstKey` takes it, on real
 * RocksDB: its answers against a model of the keys, on a read-only instance and on a snapshot of a live one; a
 * corrupted block, a closed handle, a close under seeks in flight; and the fallback for handles without it.
 */
import fc from 'fast-check'
import RocksDB from 'rocksdb-native'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { chunksOf, firstKey, overriding, rocksEngine, type Entry, type KeyRange, type OpenOptions, type StorageHandle } from '../src/engine.js'
import { StorageFailure } from '../src/errors.js'
import { nativeSeeker, seeksInFlight } from '../src/native.js'
import { removeDir, tempDir } from './support/tmp.js'
import { corruptedTable, dirAndUnhandled } from './support/engine-tests.js'

const options: OpenOptions = { readOnly: false, maxOpenFiles: -1, maxBackgroundJobs: 2, writeBufferSize: 4 * 1024 * 1024, maxWriteBufferNumber: 2, enableStatistics: false }
const bytes = (...xs: number[]) => Buffer.from(xs)
const turn = () => new Promise<void>((resolve) => setImmediate(resolve))

/** What a seek of `range` must answer on `keys` (sorted, distinct): the first key in range, or the last with reverse. */
const expected = (keys: readonly Buffer[], range: KeyRange): Buffer | undefined => {
  const inRange = keys.filter(
    (k) =>
      (range.gte === undefined || Buffer.compare(k, range.gte) >= 0) &&
      (range.lt === undefined || Buffer.compare(k, range.lt) < 0) &&
      (range.lte === undefined || Buffer.compare(k, range.lte) <= 0),
  )
  return range.reverse === true ? inRange[inRange.length - 1] : inRange[0]
}

/** Keys of 1-3 bytes from a small alphabet (so that ranges often hold some, and often none). */
const keyArb = fc.uint8Array({ minLength: 1, maxLength: 3, min: 0, max: 6 }).map((a) => Buffer.from(a))
const rangeArb = fc.record(
  { gte: keyArb, lt: keyArb, lte: keyArb, reverse: fc.boolean() },
  { requiredKeys: ['reverse'] },
).filter((r) => r.lt === undefined || r.lte === undefined)

describe('a seek by the native iterator calls', () => {
  const t = dirAndUnhandled()

  it('should be offered by the installed binding, and taken by a handle', async () => {
    // If the binding's internals change shape, rockvisor falls back to its iterator (same answers, slower): this
    // test is what says so.
    expect(nativeSeeker).toBeDefined()
    const writer = await rocksEngine.open(t.dir, options)
    await writer.write([{ type: 'put', key: bytes(1), value: bytes(9) }])
    const seek = writer.firstKey!({ gte: bytes(0) })
    expect(seeksInFlight()).toBe(1)
    expect(await seek).toEqual(bytes(1))
    await writer.close()
    // The handle's close waited for the seek's iterator to close.
    expect(seeksInFlight()).toBe(0)
  })

  describe('answers', () => {
    let root = ''
    let keys: Buffer[] = []
    let reader: StorageHandle
    let writer: StorageHandle
    beforeAll(async () => {
      root = await tempDir()
      const all = fc.sample(keyArb, { numRuns: 120, seed: 7 }).map((k) => k.toString('hex'))
      keys = [...new Set(all)].map((h) => Buffer.from(h, 'hex')).sort(Buffer.compare)
      const w = await rocksEngine.open(root, options)
      // Half the keys in a table file, half in the memtable (what a reader replays from the WAL).
      await w.write(keys.filter((_, i) => i % 2 === 0).map((key) => ({ type: 'put' as const, key, value: bytes(1) })))
      await w.flush()
      await w.write(keys.filter((_, i) => i % 2 === 1).map((key) => ({ type: 'put' as const, key, value: bytes(2) })))
      writer = w
      reader = await rocksEngine.open(root, { ...options, readOnly: true })
    })
    afterAll(async () => {
      await reader?.close()
      await writer?.close()
      await removeDir(root)
    })

    it('should answer the first key in range (the last with reverse) on a read-only instance, as the model says', async () => {
      await fc.assert(
        fc.asyncProperty(rangeArb, async (range) => {
          expect(await reader.firstKey!(range)).toEqual(expected(keys, range))
        }),
        { numRuns: 300 },
      )
    })

    it('should answer from the snapshot of a live instance, not from what was written after it', async () => {
      // Keys the instance does not hold, written after the snapshot was taken, at the very place a seek lands.
      const all = [0, 1, 2, 3, 4, 5, 6].flatMap((a) => [[a], ...[0, 1, 2, 3, 4, 5, 6].map((b) => [a, b])]).map((k) => Buffer.from(k))
      const absent = all.filter((k) => !keys.some((held) => held.equals(k)))
      expect(absent.length).toBeGreaterThan(0)
      await fc.assert(
        fc.asyncProperty(fc.constantFrom(...absent), fc.boolean(), async (later, reverse) => {
          const range: KeyRange = reverse ? { lte: later, reverse: true } : { gte: later }
          await writer.withSnapshot(async (view) => {
            await writer.write([{ type: 'put', key: later, value: bytes(3) }])
            expect(await view.firstKey!(range)).toEqual(expected(keys, range))
          })
          await writer.write([{ type: 'del', key: later }])
        }),
        { numRuns: 60 },
      )
    })

    it('should answer many seeks at once under allocation pressure, each right, and keep nothing after', async () => {
      const ranges = fc.sample(rangeArb, { numRuns: 2_000, seed: 11 })
      for (let round = 0; round < 5; round++) {
        const garbage: unknown[] = []
        const answers = await Promise.all(
          ranges.map((range) => {
            garbage.push(new Array(64).fill(round))
            return reader.firstKey!(range)
          }),
        )
        answers.forEach((answer, i) => expect(answer).toEqual(expected(keys, ranges[i]!)))
      }
      // The iterators close after their answers (2,000 calls into libuv's pool): a liveness bound, not a timing.
      for (const until = Date.now() + 10_000; seeksInFlight() > 0 && Date.now() < until; ) await new Promise((resolve) => setTimeout(resolve, 1))
      expect(seeksInFlight()).toBe(0)
    })
  })

  it('should fail a seek over a corrupted block with the cause, alone, and leave no rejection unhandled', async () => {
    const key = (i: number) => Buffer.from(`k${String(i).padStart(2, '0')}`)
    await corruptedTable(t.dir, options, key)
    const reader = await rocksEngine.open(t.dir, { ...options, readOnly: true })
    try {
      const error = await reader.firstKey!({ gte: key(1) }).catch((e: unknown) => e)
      expect(error).toBeInstanceOf(StorageFailure)
      expect((error as StorageFailure).reason).toBe('corruption')
      expect((error as StorageFailure).path).toBe(t.dir)
      // The last block is intact: its seek still answers.
      expect(await reader.firstKey!({ gte: key(99) })).toEqual(key(99))
      await turn()
      expect(t.unhandled).toEqual([])
    } finally {
      await reader.close()
    }
    expect(seeksInFlight()).toBe(0)
  })

  it('should fail a seek on a closed handle with a StorageFailure, and let a close end seeks in flight', async () => {
    const writer = await rocksEngine.open(t.dir, options)
    await writer.write([{ type: 'put', key: bytes(5), value: bytes(1) }])
    const seeks = Array.from({ length: 50 }, () => writer.firstKey!({ gte: bytes(0) }).then((k) => k, (e: unknown) => e))
    await writer.close()
    // Seeks that started before the close answered; the close waited for every one of them.
    expect(await Promise.all(seeks)).toEqual(Array.from({ length: 50 }, () => bytes(5)))
    expect(seeksInFlight()).toBe(0)
    const error = await writer.firstKey!({ gte: bytes(0) }).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(StorageFailure)
    await turn()
    expect(t.unhandled).toEqual([])
  })

  it('should go through iterate for a handle without firstKey or iterateChunks, and for a wrapper that replaces iterate', async () => {
    const writer = await rocksEngine.open(t.dir, options)
    try {
      await writer.write([1, 3, 5].map((k) => ({ type: 'put' as const, key: bytes(k), value: bytes(0) })))
      const ranges: KeyRange[] = []
      const wrapped = overriding(writer, {
        iterate: (range) => {
          ranges.push(range)
          return writer.iterate(range)
        },
      })
      expect(wrapped.firstKey).toBeUndefined()
      expect(await firstKey(wrapped, { gte: bytes(2), reverse: true })).toEqual(bytes(5))
      expect(await firstKey(wrapped, { gte: bytes(2), lt: bytes(5) })).toEqual(bytes(3))
      expect(await firstKey(wrapped, { gte: bytes(6) })).toBeUndefined()
      expect(ranges).toEqual([
        { gte: bytes(2), reverse: true, limit: 1 },
        { gte: bytes(2), lt: bytes(5), limit: 1 },
        { gte: bytes(6), limit: 1 },
      ])
      // A wrapper that leaves iterate alone keeps the handle's own seek.
      expect(overriding(writer, { write: (ops) => writer.write(ops) }).firstKey).toBeDefined()
      // And the same for chunks: a scan of the wrapper that replaced iterate goes through it, one entry per chunk.
      expect(wrapped.iterateChunks).toBeUndefined()
      const chunks: (readonly Entry[])[] = []
      for await (const chunk of chunksOf(wrapped, { gte: bytes(2) })) chunks.push(chunk)
      expect(chunks.map((c) => c.map((e) => e.key))).toEqual([[bytes(3)], [bytes(5)]])
      expect(ranges.at(-1)).toEqual({ gte: bytes(2) })
      const kept = overriding(writer, { write: (ops) => writer.write(ops) })
      expect(kept.iterateChunks).toBeDefined()
      // A wrapper of a handle without chunks has none either (its scans go through iterate, one entry per chunk).
      const outer = overriding(wrapped, { write: (ops) => writer.write(ops) })
      expect(outer.iterateChunks).toBeUndefined()
      const one: (readonly Entry[])[] = []
      for await (const chunk of chunksOf(outer, { gte: bytes(4) })) one.push(chunk)
      expect(one.map((c) => c.map((e) => e.key))).toEqual([[bytes(5)]])
      const all: (readonly Entry[])[] = []
      for await (const chunk of chunksOf(kept, {})) all.push(chunk)
      expect(all.map((c) => c.map((e) => e.key))).toEqual([[bytes(1), bytes(3), bytes(5)]])
    } finally {
      await writer.close()
    }
  })

  it('should decline a session that is closing or closed, or that the binding has not opened yet', async () => {
    const db = new RocksDB(t.dir)
    // Not opened yet: the native call would get no database.
    expect(nativeSeeker!(db, { gte: bytes(0) })).toBeUndefined()
    await db.ready()
    const open = nativeSeeker!(db, { gte: bytes(0) })
    expect(open).toBeInstanceOf(Promise)
    expect(await open).toBeUndefined()
    const closing = db.close()
    expect(nativeSeeker!(db, { gte: bytes(0) })).toBeUndefined()
    await closing
    expect(nativeSeeker!(db, { gte: bytes(0) })).toBeUndefined()
  })

  it("should leave a bound that is not bytes to the binding's iterator, which the native call would abort on", async () => {
    const writer = await rocksEngine.open(t.dir, options)
    try {
      await writer.write([{ type: 'put', key: Buffer.from('ab'), value: bytes(1) }])
      // Not what rockvisor passes (its bounds are keys it built), but a JavaScript caller of an engine could.
      const seek = writer.firstKey!({ gte: 'a' as unknown as Uint8Array })
      expect(seeksInFlight()).toBe(0)
      expect(await seek).toEqual(Buffer.from('ab'))
    } finally {
      await writer.close()
    }
  })
})
