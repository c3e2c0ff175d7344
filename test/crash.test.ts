/**
 * A crash of the process loses nothing acknowledged. A writer process writes batches (flushing often, so that data is
 * in table files and WALs alike) and prints each acknowledgement; this process SIGKILLs it in the middle of its
 * writes, then opens the root as the next writer and finds every acknowledged meta, in all three views, and the
 * sequence going on from the last acknowledged one.
 */
import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openIndex, parseToken } from '../src/index.js'
import { removeDir, tempDir } from './support/tmp.js'

describe('a crash of the writer process', () => {
  let root: string
  beforeAll(async () => {
    root = await tempDir()
  })
  afterAll(async () => removeDir(root))

  it('should lose no acknowledged write when the process is killed mid-write', async () => {
    // 400 batches: far more than are written before the kill below.
    const child = spawn(process.execPath, ['--import', 'tsx', 'test/support/writer-process.ts', root, '400', '30'], { stdio: ['pipe', 'pipe', 'inherit'] })
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)))
    const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]()
    const acked: { token: string; msgId: string }[] = []
    for (let next = await lines.next(); !next.done; next = await lines.next()) {
      if (next.value === 'ready') break
      acked.push(JSON.parse(next.value) as { token: string; msgId: string })
      if (acked.length === 60) child.kill('SIGKILL')
    }
    expect(await exited).toBe('SIGKILL')
    expect(acked.length).toBeGreaterThanOrEqual(60)
    expect(acked.length).toBeLessThan(400)

    const index = await openIndex({ root })
    try {
      for (const { msgId } of acked) {
        const meta = await index.getByMsgId('t', 1, msgId)
        expect(meta?.msgId).toBe(msgId)
        expect(await index.getMsgIdBySegmentOffset('t', 1, { segmentId: meta!.segmentId, offset: meta!.offset })).toBe(msgId)
      }
      const last = parseToken(acked[acked.length - 1]!.token).sequence
      const { token } = await index.batchPut('t', 1, [{ msgId: 'after-crash', timestamp: 1, segmentId: 2, offset: 0, msgLen: 1 }])
      expect(parseToken(token).sequence).toBeGreaterThan(last)
    } finally {
      await index.close()
    }
  })
})
