/**
 * Invariant: the kit's topic arbitraries say the truth about the index. Every `arbitraries.topic` (traversal,
 * separators, NUL, device names, escape look-alikes, names long enough to be hashed) is accepted: a meta written to it
 * reads back, from a directory inside the root; and every `arbitraries.invalidTopic` (empty, a lone surrogate, over
 * 1024 UTF-8 bytes, not a string) is rejected with InvalidInput naming the field `topic`, with nothing created.
 */
import fc from 'fast-check'
import { readdirSync } from 'node:fs'
import { relative, sep } from 'node:path'
import { expect, it } from 'vitest'
import { InvalidInput } from '../src/index.js'
import { arbitraries, withTempIndex } from '../src/testing/index.js'

const meta = { msgId: 'm', timestamp: 1, segmentId: 0, offset: 0, msgLen: 1 }

it('should accept every valid topic, inside the root, and reject every invalid one before touching the disk', { timeout: 120_000 }, async () => {
  await withTempIndex({ shards: 1 }, async (index, { root }) => {
    await fc.assert(
      fc.asyncProperty(arbitraries.topic, arbitraries.partition, async (topic, partition) => {
        const dir = relative(root, index.locate(topic, partition).dir)
        expect(dir.startsWith('..') || dir.split(sep).includes('..')).toBe(false)
        await index.batchPut(topic, partition, [meta])
        expect(await index.getByMsgId(topic, partition, 'm')).toEqual(meta)
      }),
      { numRuns: 60 },
    )
    const before = readdirSync(root).sort()
    await fc.assert(
      fc.asyncProperty(arbitraries.invalidTopic, async (topic) => {
        const error = await index.batchPut(topic as string, 0, [meta]).then(() => undefined, (e: unknown) => e)
        expect(error).toBeInstanceOf(InvalidInput)
        expect((error as InvalidInput).field).toBe('topic')
      }),
      { numRuns: 100 },
    )
    expect(readdirSync(root).sort()).toEqual(before)
  })
})
