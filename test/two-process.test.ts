/**
 * Two processes: a writer process hands its write tokens to this process, which reads the same root in reader mode;
 * every read after a token sees its write. A second writer of the root (this process, in writer mode) gets the
 * lock error naming the directory, and writes nothing.
 */
import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { StorageFailure, openIndex } from '../src/index.js'
import { removeDir, tempDir } from './support/tmp.js'

describe('two processes', () => {
  let root: string
  beforeAll(async () => {
    root = await tempDir()
  })
  afterAll(async () => removeDir(root))

  it('should let a reader-mode process see every write after its token, and refuse a second writer', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'test/support/writer-process.ts', root, '20'], { stdio: ['pipe', 'pipe', 'inherit'] })
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve))
    // Take the iterator now: readline drops lines emitted before anyone iterates.
    const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]()
    const reader = await openIndexWhenRootExists(root)
    let seen = 0
    try {
      for (let next = await lines.next(); !next.done; next = await lines.next()) {
        const line = next.value
        if (line === 'ready') break
        const { token, msgId } = JSON.parse(line) as { token: string; msgId: string }
        const meta = await reader.getByMsgId('t', 1, msgId, { after: token })
        expect(meta?.msgId).toBe(msgId)
        seen++
      }
      expect(seen).toBe(20)

      // The writer process still holds the root: a second writer fails with the lock error, naming the directory.
      const second = await openIndex({ root })
      try {
        const err = await second.batchPut('t', 1, [{ msgId: 'intruder', timestamp: 1, segmentId: 9, offset: 9, msgLen: 1 }]).catch((e: unknown) => e)
        expect(err).toBeInstanceOf(StorageFailure)
        expect((err as StorageFailure).reason).toBe('locked')
        expect((err as StorageFailure).message).toContain(second.locate('t', 1).dir)
      } finally {
        await second.close()
      }
    } finally {
      child.stdin!.end('done\n')
      await reader.close()
    }
    expect(await exited).toBe(0)
    // Nothing of the refused writer reached the disk.
    const after = await openIndex({ root, mode: 'reader' })
    try {
      expect(await after.getByMsgId('t', 1, 'intruder', { consistency: 'bounded', maxStalenessMs: 0 })).toBeUndefined()
    } finally {
      await after.close()
    }
  })
})

/** Opens a reader-mode index once the writer process has created the root (it creates it on startup). */
const openIndexWhenRootExists = async (root: string) => {
  for (let i = 0; ; i++) {
    try {
      return await openIndex({ root, mode: 'reader' })
    } catch (e) {
      if (!(e instanceof StorageFailure) || e.reason !== 'missing' || i > 500) throw e
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
  }
}
