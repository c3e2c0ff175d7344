/**
 * The kit's pieces alone (src/testing, `rockvisor/testing`): `withTempIndex` always closes what it opened and removes
 * its root, when the suite passes, throws, or leaves requests in flight; the reference model replaces by msgId and by
 * place, and its freshness windows admit exactly the states each contract allows (a stale or future answer is
 * reported, with the history).
 */
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { arbitraries, commands, model, withTempIndex, type TempIndex } from '../src/testing/index.js'
import { InvalidInput, ManualClock } from '../src/index.js'

const meta = (msgId: string, timestamp: number, segmentId: number, offset: number) => ({ msgId, timestamp, segmentId, offset, msgLen: 1 })

describe('the manual clock', () => {
  it('should never go back: a negative, NaN or infinite time is InvalidInput', async () => {
    for (const start of [Number.NaN, -1, Number.POSITIVE_INFINITY]) expect(() => new ManualClock(start)).toThrow(InvalidInput)
    const clock = new ManualClock(100)
    for (const ms of [-50, Number.NaN, Number.POSITIVE_INFINITY, '5' as unknown as number]) {
      await expect(clock.advance(ms)).rejects.toMatchObject({ _tag: 'InvalidInput', field: 'ms' })
    }
    expect(clock.now()).toBe(100)
    // Time moves by what it is told, firing what falls due.
    const fired: number[] = []
    clock.setTimeout(() => fired.push(clock.now()), 10)
    await clock.advance(1_000)
    expect(fired).toEqual([110])
    expect(clock.now()).toBe(1_100)
  })
})

describe('the small domains of the arbitraries', () => {
  it('should refuse a domain the index would refuse, naming the field, before any run', () => {
    for (const [domain, field] of [
      [{ msgIds: [] }, 'domain.msgIds'],
      [{ msgIds: ['a', ''] }, 'domain.msgIds[1]'],
      [{ msgIds: ['x'.repeat(2_000)] }, 'domain.msgIds[0]'],
      [{ segments: 0 }, 'domain.segments'],
      [{ offsets: 1.5 }, 'domain.offsets'],
      [{ maxTimestamp: -1 }, 'domain.maxTimestamp'],
      [{ maxBatch: 0 }, 'domain.maxBatch'],
    ] as const) {
      expect(() => arbitraries.collidingMeta(domain as never), field).toThrow(expect.objectContaining({ _tag: 'InvalidInput', field }))
      expect(() => commands.indexModelProperty({ domain: domain as never }), field).toThrow(expect.objectContaining({ _tag: 'InvalidInput', field }))
    }
    // A field given as undefined takes its default, as one left out; the resolved domain is what every part uses.
    expect(arbitraries.resolveDomain({ msgIds: undefined, segments: 3 })).toEqual({ ...arbitraries.collidingDefaults, segments: 3 })
  })
})

describe('withTempIndex', () => {
  it('should refuse options or a suite of the wrong kind with InvalidInput, before making anything', async () => {
    for (const [options, suite, field] of [
      [null, async () => 1, 'options'],
      [undefined, async () => 1, 'options'],
      [{}, 'not a function', 'suite'],
    ] as const) {
      const err = await withTempIndex(options as never, suite as never).catch((e: unknown) => e)
      expect(err).toMatchObject({ _tag: 'InvalidInput', field })
    }
  })

  it('should remove the roots of calls still running when the process exits early (an uncaught exception)', () => {
    const kit = fileURLToPath(new URL('../src/testing/index.ts', import.meta.url))
    const script = `
      import { withTempIndex } from ${JSON.stringify(kit)}
      void withTempIndex({ shards: 1 }, async (index, ctx) => {
        await index.batchPut('t', 0, [{ msgId: 'a', timestamp: 1, segmentId: 0, offset: 0, msgLen: 1 }])
        process.stdout.write(ctx.root + '\\n')
        setTimeout(() => { throw new Error('boom') }, 10)
        await new Promise(() => {})
      })`
    const child = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60_000 })
    expect(child.status).toBe(1)
    expect(child.stderr).toContain('boom')
    const root = child.stdout.trim()
    expect(root).toMatch(/rockvisor-kit-/)
    expect(existsSync(root)).toBe(false)
  })

  it("should refuse to move the clock for what is not a promise (a scan's iterable), with InvalidInput", async () => {
    await withTempIndex({ shards: 1 }, async (index, ctx) => {
      const scan = index.scanByTime('t', 0, 0, 10)
      await expect(ctx.whileAdvancing(scan as never)).rejects.toMatchObject({ _tag: 'InvalidInput', field: 'request' })
      const collected = (async () => {
        const out: unknown[] = []
        for await (const m of scan) out.push(m)
        return out
      })()
      expect(await ctx.whileAdvancing(collected)).toEqual([])
    })
  })

  it('should close every index and remove the root when the suite passes', async () => {
    let seen: TempIndex | undefined
    const value = await withTempIndex({ shards: 1 }, async (index, ctx) => {
      seen = ctx
      await index.batchPut('t', 0, [meta('a', 1, 0, 0)])
      await ctx.openReader()
      expect(ctx.faults.liveHandles).toBeGreaterThan(0)
      return 42
    })
    expect(value).toBe(42)
    expect(seen!.faults.liveHandles).toBe(0)
    expect(existsSync(seen!.root)).toBe(false)
  })

  it('should close every index and remove the root when the suite throws, and reject with its error', async () => {
    let seen: TempIndex | undefined
    const failure = new Error('the property failed')
    await expect(
      withTempIndex({ shards: 1 }, async (index, ctx) => {
        seen = ctx
        await index.batchPut('t', 0, [meta('a', 1, 0, 0)])
        // A request left in flight, and a reopened writer: both closed too.
        void index.getByMsgId('t', 0, 'a').catch(() => undefined)
        await ctx.reopen()
        throw failure
      }),
    ).rejects.toBe(failure)
    expect(seen!.faults.liveHandles).toBe(0)
    expect(existsSync(seen!.root)).toBe(false)
  })

  it('should let a request waiting for a restart finish with whileAdvancing', async () => {
    await withTempIndex({ shards: 1 }, async (index, { clock, faults, whileAdvancing }) => {
      await index.batchPut('t', 0, [meta('a', 1, 0, 0)])
      faults.failNext('write', 1, { role: 'primary' })
      // The injected failure restarts the primary after a backoff, and the write is retried on the new one: on the
      // manual clock it waits until the clock moves.
      let settled = false
      const write = index.batchPut('t', 0, [meta('b', 2, 0, 1)]).finally(() => (settled = true))
      for (let i = 0; i < 20; i++) await clock.advance(0)
      expect(settled).toBe(false)
      await whileAdvancing(write)
      expect(faults.injected.write).toBe(1)
      expect(await whileAdvancing(index.getByMsgId('t', 0, 'b'))).toEqual(meta('b', 2, 0, 1))
    })
  })
})

describe('the reference model', () => {
  it('should replace the holders of a put msgId and of its place, and retain by timestamp', () => {
    const s = new model.PartitionState()
    s.putBatch([meta('a', 5, 0, 0), meta('b', 6, 0, 1)])
    s.put(meta('c', 1, 0, 1)) // takes b's place: b goes
    s.put(meta('a', 7, 1, 0)) // a moves: its old place is free
    expect(s.metas()).toEqual([meta('a', 7, 1, 0), meta('c', 1, 0, 1)])
    expect(s.getMsgIdBySegmentOffset({ segmentId: 0, offset: 0 })).toBeUndefined()
    expect(s.getRangeByTime(0, 10)).toEqual({ first: { segmentId: 0, offset: 1 }, last: { segmentId: 1, offset: 0 } })
    expect(s.deleteBefore(5)).toBe(1)
    expect(s.scanByTime(0, 100)).toEqual([meta('a', 7, 1, 0)])
  })

  it('should admit exactly the states each freshness contract allows', () => {
    const m = new model.IndexModel()
    const q = { kind: 'getByMsgId', msgId: 'a' } as const
    const w1 = m.issue('t', 0, { kind: 'batchPut', metas: [meta('a', 1, 0, 0)] })
    m.settle(w1, { token: 't/0@1', at: 100 })
    const w2 = m.issue('t', 0, { kind: 'batchPut', metas: [meta('a', 2, 0, 1)] })
    m.settle(w2, { token: 't/0@2', at: 200 })

    // fresh at 250: both writes acknowledged before the read, so only the newest state.
    const fresh = m.openRead('t', 0, { consistency: 'fresh' }, 250)
    // bounded by 100 ms at 250: w1 (acknowledged at 100 < 150) is covered, w2 (at 200) is not.
    const bounded = m.openRead('t', 0, { consistency: 'bounded', maxStalenessMs: 100 }, 250)
    // after w1's token: w1 and anything later.
    const after = m.openRead('t', 0, { consistency: 'after', write: w1 }, 250)
    const w3 = m.issue('t', 0, { kind: 'batchPut', metas: [meta('a', 3, 0, 2)] }) // issued before the reads complete
    for (const r of [fresh, bounded, after]) m.closeRead(r)
    m.settle(w3, 'failed')

    expect(m.check(fresh, q, meta('a', 2, 0, 1))).toBeUndefined()
    expect(m.check(fresh, q, meta('a', 1, 0, 0))).toMatch(/answered .*allowed/)
    expect(m.check(bounded, q, meta('a', 1, 0, 0))).toBeUndefined()
    expect(m.check(bounded, q, undefined)).toMatch(/history: \[ok "a"@1\/0:0\] \[ok "a"@2\/0:1\] \[failed "a"@3\/0:2\]/)
    expect(m.check(after, q, meta('a', 1, 0, 0))).toBeUndefined()
    expect(m.check(after, q, meta('a', 2, 0, 1))).toBeUndefined()
    // A failed write is never observed.
    expect(m.check(after, q, meta('a', 3, 0, 2))).toBeDefined()
  })

  it('should let a failed retention be applied to none or to whole chunks of what it would remove, oldest first', () => {
    const m = new model.IndexModel()
    const metas = Array.from({ length: 1_030 }, (_, i) => meta(`m${i}`, 1_000 + i, 0, i))
    m.settle(m.issue('t', 0, { kind: 'batchPut', metas }), { token: 't/0@1', at: 0 })
    const read = m.openRead('t', 0, { consistency: 'fresh' }, 10)
    m.settle(m.issue('t', 0, { kind: 'deleteBefore', before: 5_000 }), 'failed')
    m.closeRead(read)
    const ids = (state: model.PartitionState) => state.metas('byTime').map((x) => x.msgId)
    const states = m.statesAfter('t', 0)
    // Failed before any chunk, after the first, or after the last (then the whole retention was applied).
    expect(states.map((x) => x.size)).toEqual([1_030, 6, 0])
    expect(ids(states[1]!)).toEqual(Array.from({ length: 6 }, (_, i) => `m${1_024 + i}`))
    const q = { kind: 'getByMsgId', msgId: 'm0' } as const
    expect(m.check(read, q, metas[0])).toBeUndefined()
    expect(m.check(read, q, undefined)).toBeUndefined()
    // Not a chunk boundary: m1 gone while m0 stays is no candidate.
    expect(m.check(read, { kind: 'scanByTime', startTs: 0, endTs: 1_001 }, [metas[0]])).toMatch(/answered/)
    // A later retention may report any of those counts; nothing else.
    const next = m.issue('t', 0, { kind: 'deleteBefore', before: 5_000 })
    m.settle(next, { token: 't/0@3', at: 20, deleted: 6 })
    expect(m.checkRetention(next)).toBeUndefined()
    next.deleted = 1_030
    expect(m.checkRetention(next)).toBeUndefined()
    next.deleted = 7
    expect(m.checkRetention(next)).toMatch(/reported 7 deleted; the model held 1030 or 6 or 0 older/)
    expect(m.statesAfter('t', 0).map((x) => x.size)).toEqual([0])
  })

  it('should report a retention that deleted a count the model did not hold', () => {
    const m = new model.IndexModel()
    m.settle(m.issue('t', 0, { kind: 'batchPut', metas: [meta('a', 1, 0, 0), meta('b', 9, 0, 1)] }), { token: 't/0@1', at: 0 })
    const right = m.issue('t', 0, { kind: 'deleteBefore', before: 5 })
    m.settle(right, { token: 't/0@2', at: 0, deleted: 1 })
    const wrong = m.issue('t', 0, { kind: 'deleteBefore', before: 10 })
    m.settle(wrong, { token: 't/0@3', at: 0, deleted: 2 })
    expect(m.checkRetention(right)).toBeUndefined()
    expect(m.checkRetention(wrong)).toMatch(/reported 2 deleted; the model held 1/)
  })
})
