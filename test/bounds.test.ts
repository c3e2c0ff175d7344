/**
 * The edges of the public surface (issue 8, items 6-9): reads never create anything, `recover` takes the shard id
 * its errors give, closing the index ends the scans their consumers left suspended (and those it finds fetching,
 * once they hand their entry over), and misuse of the API is refused with InvalidInput instead of being accepted
 * silently. Real RocksDB in temp dirs, time from a ManualClock.
 */
import { join } from 'node:path'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { Closed, InvalidInput, openIndex, ShardUnavailable, StorageFailure, Timeout, type Index, type MessageMeta } from '../src/index.js'
import { overridingHandles } from './support/engines.js'
import { drive, openHarness, shardStats, untilReaderCovers, waitFor, type Harness } from './support/harness.js'
import { listTree, removeDir, tempDir } from './support/tmp.js'

const meta = (n: number): MessageMeta => ({ msgId: `m${n}`, timestamp: 1000 + n, segmentId: 0, offset: n, msgLen: 10 })
const collect = async <T>(it: AsyncIterable<T>): Promise<T[]> => {
  const out: T[] = []
  for await (const x of it) out.push(x)
  return out
}
/** The error a call throws or rejects with (undefined if it succeeds). */
const failure = async (call: () => unknown): Promise<unknown> => {
  try {
    await call()
    return undefined
  } catch (e) {
    return e
  }
}

let h: Harness | undefined
afterEach(async () => {
  vi.restoreAllMocks()
  await h?.dispose()
  h = undefined
})

describe('reads never create anything (item 6)', () => {
  /** Every read of (topic, partition), in each of its forms and consistencies, must answer empty. */
  const readAll = async (index: Index, topic: string, partition: number, shardId: string) => {
    for (const options of [undefined, { consistency: 'primary' as const }, { consistency: 'bounded' as const, maxStalenessMs: 0 }, { after: `${shardId}@0` }]) {
      expect(await index.getByMsgId(topic, partition, 'x', options)).toBeUndefined()
      expect(await index.getRangeByTime(topic, partition, 0, Number.MAX_SAFE_INTEGER, options)).toBeUndefined()
      expect(await index.getMsgIdBySegmentOffset(topic, partition, { segmentId: 0, offset: 0 }, options)).toBeUndefined()
      expect(await collect(index.scanByTime(topic, partition, 0, Number.MAX_SAFE_INTEGER, options))).toEqual([])
    }
  }

  it('should answer reads of a topic never written as empty in writer mode, creating no directory and no shard', async () => {
    h = await openHarness()
    const before = await listTree(h.root)
    await readAll(h.index, 'ordres', 1, h.shardId('ordres', 1))
    expect(await listTree(h.root)).toEqual(before)
    expect(h.index.stats().shards).toEqual([])
    expect(h.faults.opened).toEqual({ primary: 0, reader: 0 })
  })

  it('should answer reads of a shard never written as empty beside written shards of the same topic', async () => {
    h = await openHarness()
    await h.index.batchPut('orders', 1, [meta(1)])
    const other = [...Array(64).keys()].find((p) => h!.shardId('orders', p) !== h!.shardId('orders', 1))!
    const before = await listTree(h.root)
    const shards = h.index.stats().shards.map((s) => s.id)
    await readAll(h.index, 'orders', other, h.shardId('orders', other))
    expect(await listTree(h.root)).toEqual(before)
    expect(h.index.stats().shards.map((s) => s.id)).toEqual(shards)
    // The written shard still answers.
    expect(await h.index.getByMsgId('orders', 1, 'm1')).toEqual(meta(1))
  })

  it('should answer a retention of a shard nobody wrote with nothing deleted, creating nothing', async () => {
    h = await openHarness()
    const before = await listTree(h.root)
    expect(await h.index.deleteBefore('never', 1, Number.MAX_SAFE_INTEGER)).toEqual({ deleted: 0, token: `${h.shardId('never', 1)}@0` })
    expect(await listTree(h.root)).toEqual(before)
    expect(h.index.stats().shards).toEqual([])
  })

  it('should refuse a token of a write this root never had, naming it, and create nothing', async () => {
    h = await openHarness()
    const before = await listTree(h.root)
    const token = `${h.shardId('ordres', 1)}@5`
    const calls: (() => Promise<unknown>)[] = [
      () => h!.index.getByMsgId('ordres', 1, 'x', { after: token }),
      () => h!.index.getRangeByTime('ordres', 1, 0, 10, { after: token }),
      () => h!.index.getMsgIdBySegmentOffset('ordres', 1, { segmentId: 0, offset: 0 }, { after: token }),
      () => collect(h!.index.scanByTime('ordres', 1, 0, 10, { after: token })),
    ]
    for (const call of calls) {
      const err = await failure(call)
      expect(err).toBeInstanceOf(InvalidInput)
      expect((err as InvalidInput).field).toBe('after')
      expect((err as InvalidInput).message).toContain(token)
    }
    expect(await listTree(h.root)).toEqual(before)
    expect(h.index.stats().shards).toEqual([])
  })

  it('should still read a shard that an earlier index wrote, opening it', async () => {
    const parent = await tempDir()
    try {
      const root = join(parent, 'root')
      const first = await openIndex({ root, shards: 4, readers: { min: 0 } })
      await first.batchPut('orders', 1, [meta(1)])
      await first.close()
      const second = await openIndex({ root, readers: { min: 0 } })
      try {
        expect(await second.getByMsgId('orders', 1, 'm1')).toEqual(meta(1))
        expect(await collect(second.scanByTime('orders', 1, 0, 10_000))).toEqual([meta(1)])
        expect(second.stats().shards.map((s) => s.topic)).toEqual(['orders'])
      } finally {
        await second.close()
      }
    } finally {
      await removeDir(parent)
    }
  })
})

describe('requests issued just before close()', () => {
  it('should fail with Closed a read of a shard not made yet whose directory the close overtook, making nothing', async () => {
    // Written by an earlier index: this one has not made the shard, so the read first looks at its directory.
    const parent = await tempDir()
    const root = join(parent, 'root')
    const first = await openIndex({ root, shards: 4, readers: { min: 0 } })
    await first.batchPut('orders', 1, [meta(1)])
    await first.close()
    try {
      const index = await openIndex({ root, readers: { min: 0 } })
      const reads = [
        index.getByMsgId('orders', 1, 'm1'),
        index.getMsgIdBySegmentOffset('orders', 1, { segmentId: 0, offset: 1 }),
        index.getRangeByTime('orders', 1, 0, 10_000),
      ]
      const scan = index.scanByTime('orders', 1, 0, 10_000)[Symbol.asyncIterator]()
      const next = scan.next()
      await index.close()
      for (const outcome of await Promise.allSettled([...reads, next])) {
        expect(outcome).toMatchObject({ status: 'rejected', reason: expect.any(Closed) })
        expect((outcome as PromiseRejectedResult).reason.message).toBe(`the index at ${root} is closed`)
      }
      // No shard was made after the close: nothing opened, nothing waits.
      expect(index.stats().shards).toEqual([])
    } finally {
      await removeDir(parent)
    }
  })

  it('should run the range reads and scans of an open shard issued in the same turn as close(), as its point reads', async () => {
    h = await openHarness({ readers: { min: 0 } })
    await h.index.batchPut('orders', 1, [meta(1), meta(2)])
    const point = h.index.getByMsgId('orders', 1, 'm2')
    const range = h.index.getRangeByTime('orders', 1, 0, 10_000)
    const scan = h.index.scanByTime('orders', 1, 0, 10_000)[Symbol.asyncIterator]()
    const first = scan.next()
    const closing = h.index.close()
    expect(await point).toEqual(meta(2))
    expect(await range).toEqual({ first: { segmentId: 0, offset: 1 }, last: { segmentId: 0, offset: 2 } })
    expect(await first).toEqual({ done: false, value: meta(1) })
    await closing
  })
})

describe('a token beyond what a writer-mode shard holds', () => {
  it('should be refused with InvalidInput (field after) by every read, while its primary holds the directory', async () => {
    h = await openHarness({ readers: { min: 1 } })
    const { token } = await h.index.batchPut('orders', 1, [meta(1)])
    const id = h.shardId('orders', 1)
    const seq = Number(token.slice(token.lastIndexOf('@') + 1))
    // Its own token is met; one sequence more is a write the directory never had.
    expect(await h.index.getByMsgId('orders', 1, 'm1', { after: token })).toEqual(meta(1))
    const ahead = `${id}@${seq + 1}`
    const calls: [string, () => Promise<unknown>][] = [
      ['getByMsgId', () => h!.index.getByMsgId('orders', 1, 'm1', { after: ahead })],
      ['getByMsgId, primary', () => h!.index.getByMsgId('orders', 1, 'm1', { after: ahead, consistency: 'primary' })],
      ['getByMsgId, bounded', () => h!.index.getByMsgId('orders', 1, 'm1', { after: ahead, consistency: 'bounded' })],
      ['getRangeByTime, primary', () => h!.index.getRangeByTime('orders', 1, 0, 10_000, { after: ahead, consistency: 'primary' })],
      ['getMsgIdBySegmentOffset', () => h!.index.getMsgIdBySegmentOffset('orders', 1, { segmentId: 0, offset: 1 }, { after: ahead })],
      ['getRangeByTime', () => h!.index.getRangeByTime('orders', 1, 0, 10_000, { after: ahead })],
      ['scanByTime', () => collect(h!.index.scanByTime('orders', 1, 0, 10_000, { after: ahead }))],
    ]
    for (const [name, call] of calls) {
      const err = await failure(call)
      expect(err, name).toBeInstanceOf(InvalidInput)
      expect(err, name).toMatchObject({
        field: 'after',
        message: `after: the token asks for sequence ${seq + 1} of shard ${id}, but its directory holds sequence ${seq}: the token is not from this root, or its write was lost`,
      })
    }
  })

  it('should be refused once a primary that was down publishes, for reads that waited for it', async () => {
    h = await openHarness({ readers: { min: 0 } })
    const { token } = await h.index.batchPut('orders', 1, [meta(1)])
    const seq = Number(token.slice(token.lastIndexOf('@') + 1))
    const ahead = `${h.shardId('orders', 1)}@${seq + 1}`
    // The primary crashes: the read waits for its restart, then meets a directory that holds only `seq`.
    const n = h.events.length
    h.index.faults.crash('orders', 1, 'primary')
    const outcome = await drive(h.clock, h.index.getByMsgId('orders', 1, 'm1', { after: ahead }))
    expect(outcome.error).toMatchObject({ _tag: 'InvalidInput', field: 'after' })
    // It was judged when the restarted primary published, not before.
    expect(h.events.slice(n).some((e) => e.type === 'restarted' && e.actor === 'primary')).toBe(true)
    // Its own token is still met.
    expect(await h.index.getByMsgId('orders', 1, 'm1', { after: token })).toEqual(meta(1))
  })
})

describe('a signal aborted before a request', () => {
  it('should stop every read with Timeout (aborted) before it runs, also when a handle could serve it at once', async () => {
    // A reader whose view holds the write: a read it serves starts at once.
    h = await openHarness({ readers: { min: 1 } })
    const { token } = await h.index.batchPut('orders', 1, [meta(1)])
    await untilReaderCovers(h, 'orders', 1, token, 'm1')
    const signal = AbortSignal.abort()
    const reads = { ...h.faults.calls }
    const calls: [string, () => Promise<unknown>][] = [
      ['getByMsgId', () => h!.index.getByMsgId('orders', 1, 'm1', { signal })],
      ['getMsgIdBySegmentOffset', () => h!.index.getMsgIdBySegmentOffset('orders', 1, { segmentId: 0, offset: 1 }, { signal })],
      ['getRangeByTime', () => h!.index.getRangeByTime('orders', 1, 0, 10_000, { signal })],
      ['scanByTime', () => collect(h!.index.scanByTime('orders', 1, 0, 10_000, { signal }))],
    ]
    for (const [name, call] of calls) {
      const err = await failure(call)
      expect(err, name).toBeInstanceOf(Timeout)
      expect(err, name).toMatchObject({ aborted: true })
    }
    // None of them reached RocksDB.
    expect(h.faults.calls).toEqual(reads)
  })
})

describe('recover takes the shard id its errors give (item 7)', () => {
  it('should recover an exhausted primary from the shard id of its ShardUnavailable', async () => {
    h = await openHarness({ readers: { min: 0 }, supervision: { primary: { intensity: { maxRestarts: 0, withinMs: 60_000 } } } })
    await h.index.batchPut('t', 15, [meta(1)])
    const n = h.events.length
    h.index.faults.crash('t', 15, 'primary')
    await h.event((e) => e.type === 'failed' && e.actor === 'shard', n)
    const err = await failure(() => h!.index.batchPut('t', 15, [meta(2)]))
    expect(err).toBeInstanceOf(ShardUnavailable)
    const shard = (err as ShardUnavailable).shard
    expect(shard).toBe(h.shardId('t', 15))
    expect((err as ShardUnavailable).message).toContain(`index.recover(${JSON.stringify(shard)})`)
    h.index.recover(shard)
    await h.event((e) => e.type === 'recovered' && e.actor === 'primary', n)
    await h.index.batchPut('t', 15, [meta(2)])
    expect(await h.index.getByMsgId('t', 15, 'm2')).toEqual(meta(2))
    expect(shardStats(h, 't', 15).state).toBe('running')
  })

  it.each([
    ['a shard id this index does not have', 'ordres/1'],
    ['a shard number past the shard count', 't/99'],
    ['a shard id with a bad topic dir', 'T/1'],
    ['a shard id with a bad shard number', 't/01'],
    ['a shard id with an empty shard number', 't/'],
    ['a shard id with nested slashes', 't/1/2'],
  ])('should refuse %s with InvalidInput naming it', async (_name, id) => {
    h = await openHarness()
    await h.index.batchPut('t', 1, [meta(1)])
    const err = await failure(() => h!.index.recover(id))
    expect(err).toBeInstanceOf(InvalidInput)
    expect((err as InvalidInput).message).toContain(JSON.stringify(id))
  })
})

describe('closing ends suspended scans (item 8)', () => {
  it.each([
    ['a reader', { readers: { min: 1 } }, {}],
    ['the primary', { readers: { min: 0 } }, { consistency: 'primary' as const }],
  ])('should close at once while a scan on %s waits for its consumer, and fail its next() with Closed', async (_name, options, read) => {
    h = await openHarness(options)
    const { token } = await h.index.batchPut('t', 1, Array.from({ length: 200 }, (_, i) => meta(i)))
    if (options.readers.min > 0) await untilReaderCovers(h, 't', 1, token, 'm0')
    const calls = { ...h.faults.calls }
    const scan = h.index.scanByTime('t', 1, 0, 10_000, read)[Symbol.asyncIterator]()
    expect((await scan.next()).value).toEqual(meta(0))
    if (options.readers.min > 0) expect(h.faults.calls.readerReads).toBe(calls.readerReads + 1)
    else expect(h.faults.calls.primaryReads).toBe(calls.primaryReads + 1)
    // The clock is never advanced: a close that waited for the scan would only end at the close timeout, never here.
    await h.index.close()
    expect(h.faults.liveHandles).toBe(0)
    expect(h.index.stats().totals.handles).toBe(0)
    const err = await failure(() => scan.next())
    expect(err).toBeInstanceOf(Closed)
    expect((err as Closed).message).toBe(`shard ${h.shardId('t', 1)} is closed: the index closed while this scan waited for its consumer`)
    // Finished: later calls end it quietly.
    expect(await scan.next()).toEqual({ done: true, value: undefined })
  }, 20_000)

  it('should end at once a scan that was fetching its next entry when the close began, once that entry is handed over', async () => {
    // Readers' iterations wait before their second entry while `gate.armed`.
    const gate = { armed: false, entered: false, open: () => {} }
    const engine = overridingHandles({
      reader: (handle) => ({
        iterate: (range) => ({
          async *[Symbol.asyncIterator]() {
            let n = 0
            for await (const entry of handle.iterate(range)) {
              if (n++ === 1 && gate.armed) {
                gate.entered = true
                await new Promise<void>((resolve) => (gate.open = resolve))
              }
              yield entry
            }
          },
        }),
      }),
    })
    h = await openHarness({ readers: { min: 1, max: 1 } }, engine)
    const { token } = await h.index.batchPut('t', 1, Array.from({ length: 200 }, (_, i) => meta(i)))
    await untilReaderCovers(h, 't', 1, token, 'm0')
    const scan = h.index.scanByTime('t', 1, 0, 10_000)[Symbol.asyncIterator]()
    expect((await scan.next()).value).toEqual(meta(0))
    gate.armed = true
    const second = scan.next()
    await waitFor(() => gate.entered)
    // The scan is work in flight, not waiting for its consumer: the close waits for its entry, then ends it.
    let closed = false
    const closing = h.index.close().then(() => (closed = true))
    gate.open()
    expect((await second).value).toEqual(meta(1))
    // The consumer does not come back: the close does not wait for it (the clock is never advanced).
    await waitFor(() => closed, 5_000)
    await closing
    expect(h.faults.liveHandles).toBe(0)
    expect(await failure(() => scan.next())).toBeInstanceOf(Closed)
  }, 20_000)

  it('should let a scan left suspended keep its view across a refresh, then end it at close', async () => {
    h = await openHarness({ readers: { min: 1, max: 1 } })
    const first = await h.index.batchPut('t', 1, Array.from({ length: 200 }, (_, i) => meta(i)))
    await untilReaderCovers(h, 't', 1, first.token, 'm0')
    const readerReads = h.faults.calls.readerReads
    const scan = h.index.scanByTime('t', 1, 0, 10_000)[Symbol.asyncIterator]()
    expect((await scan.next()).value).toEqual(meta(0))
    expect(h.faults.calls.readerReads).toBe(readerReads + 1)
    // A write and fresh reads make the reader refresh (swap in a new handle): the suspended scan keeps its own.
    const second = await h.index.batchPut('t', 1, [meta(500)])
    await untilReaderCovers(h, 't', 1, second.token, 'm500')
    expect((await scan.next()).value).toEqual(meta(1))
    await h.index.close()
    expect(h.faults.liveHandles).toBe(0)
    expect(await failure(() => scan.next())).toBeInstanceOf(Closed)
  }, 20_000)

  it.each(['primary', 'readers'] as const)(
    'should fail a scan whose %s handle an injected crash released mid-iteration with StorageFailure reason injected',
    async (target) => {
      h = await openHarness(target === 'primary' ? { readers: { min: 0 } } : { readers: { min: 1, max: 1 } })
      const { token } = await h.index.batchPut('t', 1, Array.from({ length: 200 }, (_, i) => meta(i)))
      if (target === 'readers') await untilReaderCovers(h, 't', 1, token, 'm0')
      const scan = h.index.scanByTime('t', 1, 0, 10_000, target === 'primary' ? { consistency: 'primary' } : {})[Symbol.asyncIterator]()
      expect((await scan.next()).value).toEqual(meta(0))
      const live = h.faults.liveHandles
      const n = h.events.length
      expect(h.index.faults.crash('t', 1, target)).toBe(1)
      await h.event((e) => e.type === 'restarted' && e.actor !== 'shard', n)
      // The crashed handle is closed (released by force) before the scan resumes.
      await waitFor(() => h!.faults.liveHandles < live)
      const err = await failure(async () => {
        for (let r = await scan.next(); !r.done; r = await scan.next());
      })
      expect(err).toBeInstanceOf(StorageFailure)
      expect((err as StorageFailure).reason).toBe('injected')
      expect((err as StorageFailure).message).toMatch(/crash/)
    },
    20_000,
  )

  it('should fail a scan whose reader another read failed with a StorageFailure saying the handle was released, not a disk error', async () => {
    h = await openHarness({ readers: { min: 1, max: 1 } })
    const { token } = await h.index.batchPut('t', 1, Array.from({ length: 200 }, (_, i) => meta(i)))
    await untilReaderCovers(h, 't', 1, token, 'm0')
    const readerReads = h.faults.calls.readerReads
    const scan = h.index.scanByTime('t', 1, 0, 10_000)[Symbol.asyncIterator]()
    expect((await scan.next()).value).toEqual(meta(0))
    expect(h.faults.calls.readerReads).toBe(readerReads + 1)
    const live = h.faults.liveHandles
    const n = h.events.length
    // A read on the same reader fails, and so does the probe after it: the reader is failed and its handle released
    // by force (the read is retried elsewhere).
    h.faults.failNext('read', 2, { role: 'reader' })
    expect(await h.index.getByMsgId('t', 1, 'm5')).toEqual(meta(5))
    await h.event((e) => e.type === 'restarted' && e.actor !== 'shard', n)
    await waitFor(() => h!.faults.liveHandles < live)
    const err = await failure(async () => {
      for (let r = await scan.next(); !r.done; r = await scan.next());
    })
    expect(err).toBeInstanceOf(StorageFailure)
    expect((err as StorageFailure).reason).toBe('io')
    expect((err as StorageFailure).message).toMatch(/released during the iteration/)
  }, 20_000)
})

describe('misuse is refused (item 9)', () => {
  it('should refuse a listener that is not a function', async () => {
    h = await openHarness()
    for (const bad of [42, undefined, null, 'f', {}]) {
      const err = await failure(() => h!.index.subscribe(bad as never))
      expect(err).toBeInstanceOf(InvalidInput)
      expect((err as InvalidInput).field).toBe('listener')
    }
  })

  it('should refuse a crash target that is not primary, readers or reader-N, even on a shard not created yet', async () => {
    h = await openHarness()
    await h.index.batchPut('t', 1, [meta(1)])
    for (const [topic, bad] of [['t', 'everything'], ['t', 'reader-'], ['t', 'reader-1.5'], ['t', 'Primary'], ['t', 7], ['never-used', 'everything']] as const) {
      const err = await failure(() => h!.index.faults.crash(topic, 1, bad as never))
      expect(err).toBeInstanceOf(InvalidInput)
      expect((err as InvalidInput).field).toBe('target')
    }
    expect(h.index.faults.crash('t', 1, 'reader-99')).toBe(0)
    expect(h.index.faults.crash('never-used', 1, 'primary')).toBe(0)
    expect(h.index.stats().shards.length).toBe(1)
  })

  it.each<[string, unknown[], string]>([
    ['an unknown op', ['explode'], 'op'],
    ['a negative count', ['read', -1], 'n'],
    ['a fractional count', ['read', 1.5], 'n'],
    ['a string count', ['read', '2'], 'n'],
    ['a non-object target', ['read', 1, 'primary'], 'target'],
    ['a null target', ['read', 1, null], 'target'],
    ['an unknown role', ['read', 1, { role: 'writer' }], 'target.role'],
    ['a non-string dir', ['read', 1, { dir: 42 }], 'target.dir'],
    ['an empty dir', ['read', 1, { dir: '' }], 'target.dir'],
    ['an unknown target key', ['read', 1, { roles: 'reader' }], 'target.roles'],
  ])('should refuse failNext with %s, arming nothing', async (_name, args, field) => {
    h = await openHarness()
    await h.index.batchPut('t', 1, [meta(1)])
    const err = await failure(() => (h!.index.faults.failNext as (...a: unknown[]) => void)(...args))
    expect(err).toBeInstanceOf(InvalidInput)
    expect((err as InvalidInput).field).toBe(field)
    // Nothing was armed: reads and writes go through.
    await h.index.batchPut('t', 1, [meta(2)])
    expect(await h.index.getByMsgId('t', 1, 'm2')).toEqual(meta(2))
    expect(h.faults.injected).toEqual({ open: 0, read: 0, write: 0 })
  })

  it('should accept the documented failNext forms', async () => {
    h = await openHarness()
    h.index.faults.failNext('read', 0)
    h.index.faults.failNext('open', 1, { role: 'reader', dir: h.root })
    h.index.faults.failNext('write', 2, {})
    expect(h.faults.injected).toEqual({ open: 0, read: 0, write: 0 })
  })

  it("should fail only the calls on a shard directory named as dir, not on a shard whose number begins with the other's", async () => {
    h = await openHarness({ shards: 12, readers: { min: 0 } })
    const inShard = (n: number): number => {
      let p = 0
      while (h!.index.locate('t', p).shard !== n) p++
      return p
    }
    const [one, ten] = [inShard(1), inShard(10)]
    await h.index.batchPut('t', one, [meta(1)])
    await h.index.batchPut('t', ten, [meta(2)])
    // Shard 1's directory is a prefix of shard 10's path as a string.
    expect(h.index.locate('t', ten).dir.startsWith(h.index.locate('t', one).dir)).toBe(true)
    const read = async (p: number, msgId: string, m: MessageMeta) => expect(await h!.index.getByMsgId('t', p, msgId, { consistency: 'primary' })).toEqual(m)
    h.index.faults.failNext('read', 1, { dir: h.index.locate('t', one).dir })
    await read(ten, 'm2', meta(2))
    expect(h.faults.injected.read).toBe(0)
    // The read fails once, injected; a probe finds the primary well, and the read is retried there.
    await read(one, 'm1', meta(1))
    expect(h.faults.injected.read).toBe(1)
    // Trailing separators name the same directory.
    h.index.faults.failNext('read', 1, { dir: `${h.index.locate('t', one).dir}//` })
    await read(one, 'm1', meta(1))
    expect(h.faults.injected.read).toBe(2)
    // A target is checked where handles are broken too: an empty dir breaks nothing.
    expect(() => h!.faults.breakHandles({ dir: '' })).toThrow(InvalidInput)
    await read(one, 'm1', meta(1))
  })

  it.each<[string, unknown[], string]>([
    ['a topic without partition or shard id', ['t'], 'partition'],
    ['a partition without topic', [undefined, 1], 'topic'],
    ['a non-string topic', [42, 1], 'topic'],
    ['a bad partition', ['t', -1], 'partition'],
    ['a non-string shard id', [42], 'shard'],
  ])('should refuse recover with %s', async (_name, args, field) => {
    h = await openHarness()
    await h.index.batchPut('t', 1, [meta(1)])
    const err = await failure(() => (h!.index.recover as (...a: unknown[]) => void)(...args))
    expect(err).toBeInstanceOf(InvalidInput)
    expect((err as InvalidInput).field).toBe(field)
  })

  it('should report a throwing listener once, naming the event and the error, and keep the others and the index going', async () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {})
    h = await openHarness()
    const seen: string[] = []
    h.index.subscribe(() => {
      throw new Error('listener bug')
    })
    h.index.subscribe(async () => {
      throw new Error('async listener bug')
    })
    h.index.subscribe((e) => seen.push(e.type))
    await h.index.batchPut('t', 1, [meta(1)])
    await h.event((e) => e.type === 'opened' && e.actor === 'primary', 0)
    expect(await h.index.getByMsgId('t', 1, 'm1')).toEqual(meta(1))
    // The async listener's rejection is reported once it settles.
    await waitFor(() => warn.mock.calls.length >= 2)
    const texts = warn.mock.calls.map((args) => args.map(String).join(' '))
    // Several events reached each listener; each listener is reported once.
    expect(seen.filter((t) => t === 'created' || t === 'opened').length).toBeGreaterThanOrEqual(2)
    expect(texts.length).toBe(2)
    expect(texts.some((t) => t.includes('listener bug') && !t.includes('async') && t.includes("'created'"))).toBe(true)
    expect(texts.some((t) => t.includes('async listener bug') && t.includes("'created'"))).toBe(true)
    expect(shardStats(h, 't', 1)).toMatchObject({ state: 'running', restarts: { primary: 0 } })
  })

  it('should report an inspect option that throws once and keep the actors going: writes, reads, a restart, close', async () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {})
    const parent = await tempDir()
    let calls = 0
    try {
      // It throws from its very first call (the root's creation, inside openIndex).
      const index = await openIndex({
        root: join(parent, 'root'),
        shards: 4,
        inspect: () => {
          calls++
          throw new Error('inspect bug')
        },
      })
      try {
        await index.batchPut('t', 1, [meta(1)])
        expect(await index.getByMsgId('t', 1, 'm1', { consistency: 'primary' })).toEqual(meta(1))
        // A crashed primary is restarted (its supervisor's transitions all went through the throwing inspect).
        index.faults.crash('t', 1, 'primary')
        await waitFor(() => index.stats().shards[0]?.restarts.primary === 1 && index.stats().shards[0]?.primary === 'ready')
        expect(await index.getByMsgId('t', 1, 'm1', { consistency: 'primary' })).toEqual(meta(1))
      } finally {
        await index.close()
      }
      expect(calls).toBeGreaterThan(10)
      const texts = warn.mock.calls.map((args) => args.map(String).join(' '))
      expect(texts.filter((t) => t.includes('inspect bug'))).toHaveLength(1)
      expect(texts[0]).toContain('the inspect option of')
    } finally {
      await removeDir(parent)
    }
  })

  it.each([
    ['throws', () => { throw new Error('random bug') }, 'threw Error: random bug'],
    ['returns NaN', () => Number.NaN, 'returned NaN'],
    ['returns 1', () => 1, 'returned 1'],
    ['returns a negative number', () => -0.5, 'returned -0.5'],
    ['returns a string', () => 'half', 'returned string'],
  ])('should back off with Math.random when the random option %s, and report it once', async (_, random, said) => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {})
    h = await openHarness({ random: random as () => number, readers: { min: 0 } })
    await h.index.batchPut('t', 1, [meta(1)])
    // Two crashes: two backoffs, each drawing a jitter.
    for (let k = 1; k <= 2; k++) {
      const n = h.events.length
      h.index.faults.crash('t', 1, 'primary')
      const outcome = await drive(h.clock, h.index.getByMsgId('t', 1, 'm1', { consistency: 'primary' }))
      expect(outcome.value).toEqual(meta(1))
      expect(h.events.slice(n).some((e) => e.type === 'restarted' && e.actor === 'primary')).toBe(true)
    }
    const texts = warn.mock.calls.map((args) => args.map(String).join(' '))
    expect(texts).toHaveLength(1)
    expect(texts[0]).toContain(`the random option of ${h.root} ${said}, not a number in [0, 1)`)
  })

  it('should take a random option that returns 0 as it is (the bottom of [0, 1)), reporting nothing', async () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {})
    h = await openHarness({ random: () => 0, readers: { min: 0 } })
    await h.index.batchPut('t', 1, [meta(1)])
    h.index.faults.crash('t', 1, 'primary')
    expect((await drive(h.clock, h.index.getByMsgId('t', 1, 'm1', { consistency: 'primary' }))).value).toEqual(meta(1))
    expect(warn).not.toHaveBeenCalled()
  })
})
