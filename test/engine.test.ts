/**
 * The engine on real RocksDB where storage itself fails: a MultiGet on a table file whose data block is corrupted.
 */
import { describe, expect, it } from 'vitest'
import { rocksEngine, type OpenOptions } from '../src/engine.js'
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

  it('should fail a MultiGet on a corrupted table file once, with the cause, and leave no rejection unhandled', async () => {
    await corruptedTable()
    const reader = await rocksEngine.open(t.dir, { ...options, readOnly: true })
    try {
      const error = await reader.getMany([key(1), key(2)]).catch((e: unknown) => e)
      expect(error).toBeInstanceOf(StorageFailure)
      expect((error as StorageFailure).reason).toBe('corruption')
      expect((error as StorageFailure).message).toMatch(/checksum mismatch/)
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

  it('should fail a settled MultiGet as a whole on a closed handle, leaving no rejection unhandled', async () => {
    const writer = await rocksEngine.open(t.dir, options)
    await writer.close()
    const error = await writer.getManySettled!([key(1)]).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(StorageFailure)
    await turn()
    expect(t.unhandled).toEqual([])
  })
})
