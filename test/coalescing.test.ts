/**
 * Coalesced point reads: the point lookups of one shard issued during one turn of the event loop go out as one
 * MultiGet per chunk of at most 256 keys, a lone read goes out at once; each read is still served by a handle whose
 * view satisfies its own need, keeps its deadline, and fails alone when its key meets a corrupted block; a failed
 * MultiGet is retried once after a probe, and only a broken handle is restarted. Real RocksDB in temp dirs; engine
 * calls are counted by the harness's FaultInjector.
 */
import { afterEach, describe, expect, it } from 'vitest'
import {
  FaultInjector,
  ManualClock,
  StorageFailure,
  Timeout,
  openIndex,
  type Engine,
  type Index,
  type MessageMeta,
} from '../src/index.js'
import { decodeKey } from '../src/keys.js'
import { recordInspection } from './support/coverage.js'
import { overridingHandles } from './support/engines.js'
import { openHarness, shardStats, untilReaderCovers, waitFor, type Harness } from './support/harness.js'

const meta = (n: number): MessageMeta => ({ msgId: `m${n}`, timestamp: 1000 + n, segmentId: 0, offset: n, msgLen: 10 })
const metas = (n: number): MessageMeta[] => Array.from({ length: n }, (_, i) => meta(i))
const cleanups: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const c of cleanups.reverse()) await c()
  cleanups.length = 0
})
const harness = async (...args: Parameters<typeof openHarness>): Promise<Harness> => {
  const h = await openHarness(...args)
  cleanups.push(() => h.dispose())
  return h
}

/** A harness with one reader per shard, `count` metas in partition 1, and its reader covering them. */
const covered = async (count: number, engine?: Engine): Promise<Harness> => {
  const h = await harness({ readers: { min: 1, max: 1 } }, engine)
  const { token } = await h.index.batchPut('t', 1, metas(count))
  await untilReaderCovers(h, 't', 1, token, 'm0')
  return h
}

/** `getByMsgId` of even i, `getMsgIdBySegmentOffset` of odd i: what each must answer for meta(i). */
const lookup = (index: Index, i: number) =>
  i % 2 === 0 ? index.getByMsgId('t', 1, `m${i}`).then((m) => expect(m).toEqual(meta(i))) : index.getMsgIdBySegmentOffset('t', 1, { segmentId: 0, offset: i }).then((id) => expect(id).toBe(`m${i}`))

describe('coalesced point reads', () => {
  it('should send a lone read at once, and the reads of one turn as one MultiGet per chunk of at most 256 keys', async () => {
    const h = await covered(600)
    const calls = { ...h.faults.calls }
    // Nothing in flight: the read goes out before the call returns.
    const lone = h.index.getByMsgId('t', 1, 'm7')
    expect(h.faults.calls.readerReads).toBe(calls.readerReads + 1)
    expect(await lone).toEqual(meta(7))
    // 600 lookups in one turn: the first goes out at once, the other 599 at the end of the turn in chunks of 256.
    await Promise.all(Array.from({ length: 600 }, (_, i) => lookup(h.index, i)))
    expect(h.faults.calls.readerReads).toBe(calls.readerReads + 1 + 1 + Math.ceil(599 / 256))
    expect(h.faults.calls.primaryReads).toBe(calls.primaryReads)
    expect(shardStats(h, 't', 1).queues).toEqual({ pendingWrites: 0, pendingReads: 0, inflight: 0 })
  })

  it('should answer absent keys with undefined and reads of other partitions of the shard from the same MultiGet', async () => {
    const h = await covered(10)
    const other = [2, 3, 4, 5, 6, 7, 8].find((p) => h.shardId('t', p) === h.shardId('t', 1))!
    const { token } = await h.index.batchPut('t', other, [{ ...meta(1), msgId: 'other' }])
    await untilReaderCovers(h, 't', other, token, 'other')
    const calls = h.faults.calls.readerReads
    const answers = await Promise.all([
      h.index.getByMsgId('t', 1, 'm0'),
      h.index.getByMsgId('t', 1, 'absent'),
      h.index.getByMsgId('t', other, 'other'),
      h.index.getByMsgId('t', other, 'm1'),
      h.index.getMsgIdBySegmentOffset('t', other, { segmentId: 0, offset: 1 }),
      h.index.getMsgIdBySegmentOffset('t', 1, { segmentId: 9, offset: 9 }),
    ])
    expect(answers).toEqual([meta(0), undefined, { ...meta(1), msgId: 'other' }, undefined, 'other', undefined])
    expect(h.faults.calls.readerReads).toBe(calls + 2)
  })

  it('should serve each read of a turn by a handle that satisfies its own need', async () => {
    const h = await covered(10)
    await h.index.batchPut('t', 1, [meta(10)])
    // The reader has not seen m10: a fresh read of it needs the primary (or a refreshed reader); a primary-only read
    // goes to the primary; a bounded read of an old meta is served at once whatever the others need.
    const primaryReads = h.faults.calls.primaryReads
    const answers = await Promise.all([
      h.index.getByMsgId('t', 1, 'm1', { consistency: 'bounded', maxStalenessMs: 3_600_000 }),
      h.index.getByMsgId('t', 1, 'm10'),
      h.index.getByMsgId('t', 1, 'm10', { consistency: 'primary' }),
      h.index.getMsgIdBySegmentOffset('t', 1, { segmentId: 0, offset: 10 }),
    ])
    expect(answers).toEqual([meta(1), meta(10), meta(10), 'm10'])
    expect(h.faults.calls.primaryReads).toBeGreaterThan(primaryReads)
  })

  it('should let a reader-mode read that a view serves go while another read of the turn waits for a refresh', async () => {
    const w = await harness({ readers: { min: 0 } })
    const first = await w.index.batchPut('t', 1, [meta(1)])
    const faults = new FaultInjector()
    const clock = new ManualClock(1_000_000)
    // Not following the logs, which would answer the second read from its view merged with them: a read that waits
    // for a refresh beside one a view serves is the subject.
    const reader = await openIndex({ root: w.root, mode: 'reader', engine: faults, clock, inspect: recordInspection, freshness: { followLogs: false } })
    cleanups.push(() => reader.close())
    expect(await reader.getByMsgId('t', 1, 'm1', { after: first.token })).toEqual(meta(1))
    const second = await w.index.batchPut('t', 1, [meta(2)])
    // No reader view will ever reach the second write: its read waits, and times out; the other is served.
    faults.failNext('open', 1_000, { role: 'reader' })
    const waiting = reader.getByMsgId('t', 1, 'm2', { after: second.token, timeoutMs: 100 }).catch((e: unknown) => e)
    const served = reader.getByMsgId('t', 1, 'm1', { consistency: 'bounded', maxStalenessMs: 3_600_000 })
    expect(await served).toEqual(meta(1))
    await clock.advance(200)
    const error = await waiting
    expect(error).toBeInstanceOf(Timeout)
    expect((error as Timeout).waitedFor).toContain(`sequence >= ${second.token.slice(second.token.lastIndexOf('@') + 1)}`)
  })

  it('should fail a read whose deadline passed or whose signal aborted before its turn ended, and never run it', async () => {
    const h = await covered(10)
    const calls = h.faults.calls.readerReads
    const lone = h.index.getByMsgId('t', 1, 'm1')
    const controller = new AbortController()
    const aborted = h.index.getByMsgId('t', 1, 'm2', { signal: controller.signal }).catch((e: unknown) => e)
    const expired = h.index.getByMsgId('t', 1, 'm3', { timeoutMs: 1 }).catch((e: unknown) => e)
    const kept = h.index.getByMsgId('t', 1, 'm4')
    controller.abort()
    void h.clock.advance(10)
    expect(await lone).toEqual(meta(1))
    expect(await kept).toEqual(meta(4))
    expect(await aborted).toMatchObject({ _tag: 'Timeout', aborted: true })
    expect(await expired).toMatchObject({ _tag: 'Timeout', aborted: false, timeoutMs: 1 })
    // The lone read, then one MultiGet for the one read left.
    expect(h.faults.calls.readerReads).toBe(calls + 2)
    expect(shardStats(h, 't', 1).queues.pendingReads).toBe(0)
  })

  it('should retry a failed MultiGet once after a probe, restarting nothing when the probe succeeds', async () => {
    const h = await covered(50)
    const calls = h.faults.calls.readerReads
    const n = h.events.length
    // The lone first read passes; the MultiGet of the other 49 fails once.
    h.faults.failNext('read', 1, { role: 'reader' }, { skip: 1 })
    await Promise.all(Array.from({ length: 50 }, (_, i) => lookup(h.index, i)))
    expect(h.faults.injected.read).toBe(1)
    // The lone read, the probe, the retried MultiGet (the failed call never reached the engine).
    expect(h.faults.calls.readerReads).toBe(calls + 3)
    expect(h.events.slice(n).filter((e) => e.type === 'failed' || e.type === 'restarted')).toEqual([])
    expect(shardStats(h, 't', 1).restarts).toEqual({ primary: 0, readers: 0 })
  })

  it('should restart a reader whose MultiGet and probe both fail, and answer its reads elsewhere', async () => {
    const h = await covered(50)
    const primaryReads = h.faults.calls.primaryReads
    const n = h.events.length
    h.faults.failNext('read', 2, { role: 'reader' }, { skip: 1 })
    await Promise.all(Array.from({ length: 50 }, (_, i) => lookup(h.index, i)))
    expect(h.faults.calls.primaryReads).toBe(primaryReads + 1)
    await h.event((e) => e.type === 'restarted' && e.actor !== 'primary' && e.actor !== 'shard', n)
  })

  it('should fail only the read whose key meets a corrupted block, counted, and answer the others of its MultiGet', async () => {
    const bad = 'm13'
    // An engine whose read-only handles report a corrupted block for the by-id key of m13, as RocksDB does for a key
    // whose block fails its checksum: that key's read fails, the others of the MultiGet are answered.
    const corrupting = overridingHandles({
      reader: (inner, path) => ({
        getManySettled: async (keys) => {
          const { values, errors } = await inner.getManySettled!(keys)
          const out = errors ?? keys.map(() => undefined)
          let hit = false
          keys.forEach((k, i) => {
            const key = decodeKey(k)
            if (key.view === 'byId' && key.msgId === bad) {
              out[i] = new StorageFailure({ reason: 'corruption', path, message: `block checksum mismatch in ${path}` })
              values[i] = undefined
              hit = true
            }
          })
          return hit || errors !== undefined ? { values, errors: out } : { values }
        },
      }),
    })
    const h = await covered(30, corrupting)
    const calls = h.faults.calls.readerReads
    const n = h.events.length
    const outcomes = await Promise.allSettled(Array.from({ length: 30 }, (_, i) => h.index.getByMsgId('t', 1, `m${i}`)))
    outcomes.forEach((o, i) => {
      if (i === 13) {
        expect(o.status).toBe('rejected')
        const e = (o as PromiseRejectedResult).reason as StorageFailure
        expect(e).toBeInstanceOf(StorageFailure)
        expect(e).toMatchObject({ reason: 'corruption', shard: h.shardId('t', 1) })
        expect(e.message).toContain('other keys are still served')
      } else expect(o).toEqual({ status: 'fulfilled', value: meta(i) })
    })
    // One lone read, one MultiGet: no retry, no probe, nothing restarted.
    expect(h.faults.calls.readerReads).toBe(calls + 2)
    expect(shardStats(h, 't', 1).integrity.corruptReads).toBe(1)
    expect(h.events.slice(n).filter((e) => e.type === 'corruption')).toHaveLength(1)
    expect(h.events.slice(n).filter((e) => e.type === 'failed' || e.type === 'restarted')).toEqual([])
  })

  it('should count coalesced reads against maxInflightReads and grow the pool by the reads of a turn', async () => {
    const h = await harness({ readers: { min: 1, max: 2, growAt: 4 }, queues: { maxInflightReads: 100 } })
    const { token } = await h.index.batchPut('t', 1, metas(20))
    await untilReaderCovers(h, 't', 1, token, 'm0')
    const outcomes = await Promise.allSettled(Array.from({ length: 150 }, (_, i) => h.index.getByMsgId('t', 1, `m${i % 20}`)))
    expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(100)
    expect(outcomes.slice(100).every((o) => o.status === 'rejected' && (o.reason as { _tag: string })._tag === 'Overloaded')).toBe(true)
    // 100 reads in one turn on one reader is 100 reads in flight per reader: the pool grows.
    await waitFor(() => shardStats(h, 't', 1).readers.serving === 2)
  })
})
