/**
 * The engine on real RocksDB where storage itself fails: a MultiGet on a table file whose data block is corrupted.
 */
import { describe, expect, it } from 'vitest'
import { rocksEngine, type Entry, type OpenOptions } from '../src/engine.js'
import { StorageFailure } from '../src/errors.js'
import { corruptedTable as corruptTable, dirAndUnhandled } from './support/engine-tests.js'

const options: OpenOptions = { readOnly: false, maxOpenFiles: -1, maxBackgroundJobs: 2, writeBufferSize: 4 * 1024 * 1024, maxWriteBufferNumber: 2, enableStatistics: false }
const key = (i: number) => new TextEncoder().encode(`k${i}`)

/** Lets every pending microtask and I/O callback run: Node reports unhandled rejections in between. */
const turn = () => new Promise<void>((resolve) => setImmediate(resolve))

describe('engine', () => {
  const t = dirAndUnhandled()

  /** 100 keys in a table file whose first data block (holding k1, k2, not k99) no longer matches its checksum. */
  const corruptedTable = () => corruptTable(t.dir, options, key)

  it('should fail a MultiGet, and a chunked iteration, on a corrupted table file once, with the cause, and leave no rejection unhandled', async () => {
    await corruptedTable()
    const reader = await rocksEngine.open(t.dir, { ...options, readOnly: true })
    try {
      const reads = [() => reader.getMany([key(1), key(2)]), () => chunksOf(reader.iterateChunks!({}))]
      for (const read of reads) {
        const error = await read().catch((e: unknown) => e)
        expect(error).toBeInstanceOf(StorageFailure)
        expect((error as StorageFailure).reason).toBe('corruption')
        expect((error as StorageFailure).message).toMatch(/checksum mismatch/)
      }
      await turn()
      await turn()
      // Each key's get failed as well: none of those rejections may be left unhandled.
      expect(t.unhandled).toEqual([])
    } finally {
      await reader.close()
    }
  })

  it('should answer a settled MultiGet key by key: a key on a corrupted block fails alone, the others get their values', async () => {
    await corruptedTable()
    const reader = await rocksEngine.open(t.dir, { ...options, readOnly: true })
    try {
      const { values, errors } = await reader.getManySettled!([key(1), key(99), new TextEncoder().encode('absent'), key(2)])
      expect(errors).toHaveLength(4)
      expect(errors![0]).toBeInstanceOf(StorageFailure)
      expect(errors![0]!.reason).toBe('corruption')
      expect(errors![0]!.message).toMatch(/checksum mismatch/)
      expect(errors![3]!.reason).toBe('corruption')
      expect([errors![1], errors![2]]).toEqual([undefined, undefined])
      expect(values[1]).toEqual(Buffer.alloc(100, 7))
      expect([values[0], values[2], values[3]]).toEqual([undefined, undefined, undefined])
      // Without a failed key there is no errors array at all.
      expect(await reader.getManySettled!([key(99), key(98)])).toEqual({ values: [Buffer.alloc(100, 7), Buffer.alloc(100, 7)] })
      await turn()
      await turn()
      expect(t.unhandled).toEqual([])
    } finally {
      await reader.close()
    }
  })

  /** Every chunk of `chunks`, in order. */
  const chunksOf = async (chunks: AsyncIterable<readonly Entry[]>): Promise<(readonly Entry[])[]> => {
    const out: (readonly Entry[])[] = []
    for await (const chunk of chunks) out.push(chunk)
    return out
  }
  const entriesOf = async (entries: AsyncIterable<Entry>): Promise<Entry[]> => {
    const out: Entry[] = []
    for await (const entry of entries) out.push(entry)
    return out
  }
  /** k000..k199 (in key order), each its own index as value. */
  const keyed = (i: number) => new TextEncoder().encode(`k${String(i).padStart(3, '0')}`)
  const written200 = async () => {
    const writer = await rocksEngine.open(t.dir, options)
    await writer.write(Array.from({ length: 200 }, (_, i) => ({ type: 'put' as const, key: keyed(i), value: Buffer.of(i) })))
    return writer
  }

  it('should yield a range a chunk at a time: none empty, none over 64 entries, the entries iterate yields, in order', async () => {
    const writer = await written200()
    try {
      const ranges = [{}, { gte: keyed(10), lt: keyed(150) }, { gte: keyed(10), lte: keyed(150), reverse: true }, { gte: keyed(5), limit: 100 }, { limit: 1 }]
      for (const range of ranges) {
        const chunks = await chunksOf(writer.iterateChunks!(range))
        expect(chunks.every((c) => c.length > 0 && c.length <= 64), JSON.stringify(range)).toBe(true)
        const entries = await entriesOf(writer.iterate(range))
        expect(chunks.flat(), JSON.stringify(range)).toEqual(entries)
      }
      expect((await entriesOf(writer.iterate({}))).map((e) => e.value[0])).toEqual(Array.from({ length: 200 }, (_, i) => i))
      expect((await chunksOf(writer.iterateChunks!({ gte: keyed(10), lt: keyed(150) }))).flat()).toHaveLength(140)
      expect((await chunksOf(writer.iterateChunks!({ gte: keyed(10), lte: keyed(150), reverse: true }))).flat().map((e) => e.value[0])).toEqual(
        Array.from({ length: 141 }, (_, i) => 150 - i),
      )
      expect((await chunksOf(writer.iterateChunks!({ gte: keyed(5), limit: 100 }))).flat().map((e) => e.value[0])).toEqual(Array.from({ length: 100 }, (_, i) => 5 + i))
      expect(await chunksOf(writer.iterateChunks!({ gte: keyed(200) }))).toEqual([])
    } finally {
      await writer.close()
    }
  })

  it('should end a chunked iteration its consumer stops early, and one its handle closes under (not a disk error)', async () => {
    const writer = await written200()
    const stopped = writer.iterateChunks!({})[Symbol.asyncIterator]()
    expect((await stopped.next()).done).toBe(false)
    expect(await stopped.return!()).toEqual({ done: true, value: undefined })
    const cut = writer.iterateChunks!({})[Symbol.asyncIterator]()
    const first = await cut.next()
    expect(first.value).toHaveLength(64)
    // The handle's close ends the iteration rather than wait for it.
    await writer.close()
    let seen = 64
    const error = await (async () => {
      for (;;) {
        const next = await cut.next()
        if (next.done === true) return 'ended'
        seen += next.value.length
      }
    })().catch((e: unknown) => e)
    expect(error).toBeInstanceOf(StorageFailure)
    expect((error as StorageFailure).reason).toBe('io')
    expect((error as StorageFailure).message).toMatch(/was released during the iteration/)
    expect(seen).toBeLessThan(200)
    await turn()
    expect(t.unhandled).toEqual([])
  })

  it('should fail a settled MultiGet as a whole on a closed handle, leaving no rejection unhandled', async () => {
    const writer = await rocksEngine.open(t.dir, options)
    await writer.close()
    const error = await writer.getManySettled!([key(1)]).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(StorageFailure)
    await turn()
    expect(t.unhandled).toEqual([])
  })
})
