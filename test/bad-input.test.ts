import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { InvalidInput, openIndex, type Index, type MessageMeta } from '../src/index.js'
import { listTree, removeDir, tempDir } from './support/tmp.js'

const good: MessageMeta = { msgId: 'm1', timestamp: 1, segmentId: 2, offset: 3, msgLen: 4 }

describe('bad input', () => {
  let parent: string
  let root: string
  let index: Index

  beforeAll(async () => {
    parent = await tempDir()
    root = join(parent, 'root')
    index = await openIndex({ root, shards: 4 })
    await index.batchPut('t', 1, [good])
  })
  afterAll(async () => {
    await index.close()
    await removeDir(parent)
  })

  const badMetas: [string, unknown][] = [
    ['empty msgId', { ...good, msgId: '' }],
    ['oversized msgId', { ...good, msgId: 'x'.repeat(1025) }],
    ['lone surrogate in msgId', { ...good, msgId: 'a\uD800' }],
    ['non-string msgId', { ...good, msgId: 42 }],
    ['negative timestamp', { ...good, timestamp: -1 }],
    ['fractional offset', { ...good, offset: 1.5 }],
    ['NaN timestamp', { ...good, timestamp: Number.NaN }],
    ['Infinity offset', { ...good, offset: Number.POSITIVE_INFINITY }],
    ['unsafe integer offset', { ...good, offset: 2 ** 53 }],
    ['segmentId beyond u32', { ...good, segmentId: 2 ** 32 }],
    ['msgLen beyond u32', { ...good, msgLen: 2 ** 32 }],
    ['string timestamp', { ...good, timestamp: '1' }],
    ['missing field', { msgId: 'x', timestamp: 1, segmentId: 1, offset: 1 }],
    ['null meta', null],
  ]

  it.each(badMetas)('should reject a batch with %s, writing nothing', async (_name, bad) => {
    const before = await listTree(parent)
    const seq = index.stats().shards.find((s) => s.topic === 't')?.sequence
    // The bad meta comes after a good one: the whole batch is refused, not just the bad meta.
    const err = await index.batchPut('t', 1, [{ ...good, msgId: 'first' }, bad as MessageMeta]).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(InvalidInput)
    expect((err as InvalidInput)._tag).toBe('InvalidInput')
    expect(await index.getByMsgId('t', 1, 'first')).toBeUndefined()
    expect(index.stats().shards.find((s) => s.topic === 't')?.sequence).toBe(seq)
    expect(await listTree(parent)).toEqual(before)
  })

  const badCalls: [string, (i: Index) => Promise<unknown>][] = [
    ['a partition out of u32 range', (i) => i.batchPut('t', 2 ** 32, [good])],
    ['a negative partition', (i) => i.batchPut('t', -1, [good])],
    ['a fractional partition', (i) => i.getByMsgId('t', 0.5, 'm1')],
    ['an empty topic', (i) => i.batchPut('', 1, [good])],
    ['a topic over 1024 bytes', (i) => i.batchPut('é'.repeat(513), 1, [good])],
    ['a topic with a lone surrogate', (i) => i.batchPut('\uDC00', 1, [good])],
    ['a non-string topic', (i) => i.batchPut(undefined as unknown as string, 1, [good])],
    ['a non-array batch', (i) => i.batchPut('t', 1, good as unknown as MessageMeta[])],
    ['a batch naming one msgId twice', (i) => i.batchPut('t', 1, [good, { ...good, segmentId: 9 }])],
    ['a batch naming one segment offset twice', (i) => i.batchPut('t', 1, [good, { ...good, msgId: 'other' }])],
    ['a batch over the size limit', (i) => i.batchPut('t', 1, Array.from({ length: 100_001 }, (_, n) => ({ ...good, msgId: `m${n}`, offset: n })))],
    ['a NaN start of range', (i) => i.getRangeByTime('t', 1, Number.NaN, 5)],
    ['a negative end of range', (i) => i.getRangeByTime('t', 1, 0, -5)],
    ['a bad segment offset', (i) => i.getMsgIdBySegmentOffset('t', 1, { segmentId: -1, offset: 0 })],
    ['an empty msgId lookup', (i) => i.getByMsgId('t', 1, '')],
    ['a fractional retention bound', (i) => i.deleteBefore('t', 1, 0.5)],
    ['a scan with a bad limit', async (i) => i.scanByTime('t', 1, 0, 10, { limit: -1 })],
    ['a malformed token, on a topic never used', (i) => i.getByMsgId('never-used', 1, 'x', { after: 'garbage' })],
    ['an unknown consistency, on a topic never used', (i) => i.getRangeByTime('never-used', 2, 0, 1, { consistency: 'eventual' as never })],
    ['a negative staleness bound, on a topic never used', async (i) => i.scanByTime('never-used', 3, 0, 1, { consistency: 'bounded', maxStalenessMs: -1 })],
    // Options a call does not take are refused, not ignored (a typo would otherwise silently change nothing).
    ['a read option with a typo', (i) => i.getByMsgId('t', 1, 'm1', { timeOutMs: 5 } as never)],
    ['a read consistency with a typo', (i) => i.getRangeByTime('t', 1, 0, 5, { consistancy: 'primary' } as never)],
    ['a read option given to a write', (i) => i.batchPut('t', 1, [{ ...good, msgId: 'opt' }], { consistency: 'primary' } as never)],
    ['a token given to a retention', (i) => i.deleteBefore('t', 1, 0, { after: 't/1@1' } as never)],
    ['a scan option given to a point read', (i) => i.getMsgIdBySegmentOffset('t', 1, { segmentId: 2, offset: 3 }, { limit: 1 } as never)],
  ]

  /** An object whose `key` getter throws. */
  const throwing = <T extends object>(plain: T, key: string): T =>
    Object.defineProperty({ ...plain }, key, {
      enumerable: true,
      get() {
        throw new Error(`getter of ${key}`)
      },
    })
  const hostile: [string, string, (i: Index) => Promise<unknown>][] = [
    ['a meta whose getter throws', 'metas[1]', (i) => i.batchPut('t', 1, [{ ...good, msgId: 'h1' }, throwing(good, 'offset')])],
    [
      'a batch whose length throws (a Proxy)',
      'metas',
      (i) =>
        i.batchPut(
          't',
          1,
          new Proxy([good], {
            get(target, key, receiver) {
              if (key === 'length') throw new Error('length trap')
              return Reflect.get(target, key, receiver) as unknown
            },
          }),
        ),
    ],
    ['a segment offset whose getter throws', 'segmentOffset', (i) => i.getMsgIdBySegmentOffset('t', 1, throwing({ segmentId: 2, offset: 3 }, 'segmentId'))],
    ['read options whose getter throws', 'options', (i) => i.getByMsgId('t', 1, 'm1', throwing({}, 'timeoutMs'))],
    ['scan options whose getter throws', 'options', async (i) => i.scanByTime('t', 1, 0, 5, throwing({}, 'limit'))],
    ['write options whose getter throws', 'options', (i) => i.batchPut('t', 1, [{ ...good, msgId: 'h2' }], throwing({}, 'signal'))],
  ]

  it.each(hostile)('should refuse %s with InvalidInput naming %s, writing nothing', async (_name, field, call) => {
    const before = await listTree(parent)
    const err = await Promise.resolve()
      .then(() => call(index))
      .then(
        () => undefined,
        (e: unknown) => e,
      )
    expect(err).toBeInstanceOf(InvalidInput)
    expect(err).toMatchObject({ field })
    expect((err as InvalidInput).message).toContain('reading it threw (Error: ')
    expect(await listTree(parent)).toEqual(before)
  })

  it.each(badCalls)('should reject %s with InvalidInput and change nothing on disk', async (_name, call) => {
    const before = await listTree(parent)
    const err = await call(index).then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(err).toBeInstanceOf(InvalidInput)
    expect(await listTree(parent)).toEqual(before)
    expect(await index.getByMsgId('t', 1, 'm1')).toEqual(good)
  })

  it.each([
    ['../../escape', '../../escape'],
    ['..', '..'],
    ['.', '.'],
    ['/abs/path', '/abs/path'],
    ['a/../../b', 'a/../../b'],
    ['a NUL byte', 'nul\0byte'],
    ['CON', 'CON'],
    ['unicode', 'Ünïcödé 主题'],
    ['1024 bytes long', 'x'.repeat(1024)],
  ])(
    'should keep the topic %s inside the root, in a directory of its own',
    async (_label, topic) => {
      const before = (await listTree(parent)).filter((p) => !p.startsWith('root/'))
      await index.batchPut(topic, 7, [{ ...good, msgId: `for ${topic.slice(0, 40)}` }])
      expect(await index.getByMsgId(topic, 7, `for ${topic.slice(0, 40)}`)).toBeDefined()
      // Nothing appeared outside the root.
      expect((await listTree(parent)).filter((p) => !p.startsWith('root/'))).toEqual(before)
      const { dir } = index.locate(topic, 7)
      expect(dir.startsWith(`${root}/`)).toBe(true)
      // Another topic's data is not visible under this topic.
      expect(await index.getByMsgId(topic, 1, 'm1')).toBeUndefined()
    },
  )

  it('should refuse shards = 0 and a shard count that disagrees with the root, creating nothing', async () => {
    const before = await listTree(parent)
    await expect(openIndex({ root: join(parent, 'zero'), shards: 0 })).rejects.toBeInstanceOf(InvalidInput)
    await expect(openIndex({ root, shards: 5 })).rejects.toBeInstanceOf(InvalidInput)
    await expect(openIndex({ root: join(parent, 'neg'), shards: -1 })).rejects.toBeInstanceOf(InvalidInput)
    await expect(openIndex({ root: join(parent, 'opts'), readers: { min: 3, max: 2 } })).rejects.toBeInstanceOf(InvalidInput)
    expect(await listTree(parent)).toEqual(before)
  })
})
