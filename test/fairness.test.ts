/**
 * Reads cannot starve the rest of the process: point reads go out at most 256 per turn of the event loop (also those
 * answered at once from the memory of recent writes, whose callers would otherwise loop without letting the loop
 * turn), and at most half of libuv's pool runs point-read MultiGets at once (the rest wait, and go out in larger
 * chunks), so a write's I/O never queues behind thousands of reads; while a write waits, reads go out in MultiGets
 * of at most 64 keys, one MultiGet at a time, so that its I/O completions wait behind fewer answers. Range reads run at most 16 at once (4
 * while a write waits), the others waiting in order, each bounded by its deadline. Real RocksDB in temp dirs.
 */
import { getEventListeners } from 'node:events'
import { setImmediate as nextTurn } from 'node:timers/promises'
import { describe, expect, it, onTestFinished, vi } from 'vitest'
import { chunksOf, firstKey, type Entry, type SettledValues, type StorageHandle } from '../src/engine.js'
import { Timeout, type MessageMeta } from '../src/index.js'
import { RecentWrites } from '../src/recent.js'
import { overridingHandles } from './support/engines.js'
import { harnessPerTest, untilReaderCovers, waitFor, type Harness } from './support/harness.js'

const meta = (n: number): MessageMeta => ({ msgId: `m${n}`, timestamp: 1000 + n, segmentId: 0, offset: n, msgLen: 10 })
const harness = harnessPerTest()

/** `read` (made with a 1 s deadline, and waiting) fails with a Timeout that names `waitingFor` at its deadline, not before. */
const timesOutAtDeadline = async (h: Harness, read: Promise<unknown>, waitingFor: string): Promise<void> => {
  let outcome: unknown = 'pending'
  read.then(
    (r) => (outcome = r),
    (e: unknown) => (outcome = e),
  )
  for (let turn = 0; turn < 3; turn++) await nextTurn()
  await h.clock.advance(999)
  expect(outcome).toBe('pending')
  await h.clock.advance(1)
  for (let turn = 0; turn < 3; turn++) await nextTurn()
  expect(outcome).toBeInstanceOf(Timeout)
  expect((outcome as Timeout).message).toContain(waitingFor)
}

describe('reads share the event loop and the thread pool', () => {
  /**
   * 1,000 callers, each reading 20 of 100 msgIds in a loop, all answered from the memory of recent writes without
   * I/O (the reader's view stays where it is). `done()` counts the answers so far; `all` settles with the last.
   */
  const callersOnMemory = async () => {
    const h = await harness({ readers: { min: 1, max: 1 } })
    const { token } = await h.index.batchPut('t', 1, [meta(0)])
    await untilReaderCovers(h, 't', 1, token, 'm0')
    h.faults.failNext('open', 1_000_000, { role: 'reader' })
    await h.index.batchPut('t', 1, Array.from({ length: 100 }, (_, i) => meta(i + 1)))
    let done = 0
    const callers = Array.from({ length: 1_000 }, async (_, c) => {
      for (let k = 0; k < 20; k++) {
        expect(await h.index.getByMsgId('t', 1, `m${1 + ((c + k) % 100)}`)).toEqual(meta(1 + ((c + k) % 100)))
        done++
      }
    })
    return { done: () => done, all: Promise.all(callers) }
  }

  it('should let the event loop turn while callers loop on reads answered from memory', async () => {
    const { done, all } = await callersOnMemory()
    // Queued after the callers' first reads: it runs once the loop turns.
    const atTurn = await new Promise<number>((resolve) => setImmediate(() => resolve(done())))
    await all
    expect(done()).toBe(20_000)
    // One lone read, then one turn's share: far from the 1,000 a turn used to answer, or the 20,000 of a loop that
    // never turned.
    expect(atTurn).toBeGreaterThan(0)
    expect(atTurn).toBeLessThanOrEqual(2 * 256 + 1)
  })

  it('should answer at most one turn of reads per turn of the event loop for as long as a backlog lasts', async () => {
    const { done, all } = await callersOnMemory()
    // A probe that queues itself again each time runs once per turn of the event loop (an immediate queued while the
    // loop runs its immediates waits for the next turn): between two of its runs, one turn's reads.
    const perTurn: number[] = []
    let last = 0
    let probing = true
    const probe = () => {
      perTurn.push(done() - last)
      last = done()
      if (probing) setImmediate(probe)
    }
    setImmediate(probe)
    await all
    probing = false
    expect(done()).toBe(20_000)
    // Each turn: the scheduler's turn (256 reads) and the lone reads that go at once after it (256 more), however
    // long the backlog has lasted. A turn that scheduled the next one twice (once per shard with reads left, once
    // more for the scheduler) doubled the reads of every turn after it: 20,000 reads in a handful of turns.
    expect(perTurn.length).toBeGreaterThan(20_000 / (2 * 256 + 1))
    expect(Math.max(...perTurn)).toBeLessThanOrEqual(2 * 256 + 1)
  })

  it('should run at most half of the pool in point-read MultiGets, however many reads wait', async () => {
    const held: (() => void)[] = []
    let running = 0
    let peak = 0
    let gated = false
    // Reader MultiGets finish only when the test lets them, once gated.
    const engine = overridingHandles({
      reader: (handle) => ({
        getManySettled: async (keys): Promise<SettledValues> => {
          const result = handle.getManySettled!(keys)
          if (!gated) return result
          running++
          peak = Math.max(peak, running)
          await new Promise<void>((resolve) => held.push(resolve))
          const value = await result
          running--
          return value
        },
      }),
    })
    const h = await harness({ shards: 4, readers: { min: 1, max: 1 } }, engine)
    // One partition on each of the 4 shards, each covered by its reader.
    const partitions: number[] = []
    for (let p = 0; partitions.length < 4; p++) if (!partitions.some((q) => h.shardId('t', q) === h.shardId('t', p))) partitions.push(p)
    for (const p of partitions) {
      const { token } = await h.index.batchPut('t', p, Array.from({ length: 300 }, (_, i) => meta(i)))
      await untilReaderCovers(h, 't', p, token, 'm0')
    }
    gated = true
    // Should an expectation fail, the held MultiGets are let go, so that the index can close.
    onTestFinished(() => {
      gated = false
      for (const release of held.splice(0)) release()
    })
    const reads = partitions.flatMap((p) => Array.from({ length: 1_000 }, (_, i) => h.index.getByMsgId('t', p, `m${i % 300}`)))
    for (let turn = 0; turn < 10; turn++) await nextTurn()
    const cap = Math.max(1, Math.floor((Number(process.env.UV_THREADPOOL_SIZE) || 4) / 2))
    // Ten turns with reads of 4 shards waiting: only `cap` MultiGets went out.
    expect(held.length).toBe(cap)
    let settled = false
    const all = Promise.all(reads).finally(() => (settled = true))
    // One MultiGet let through at a time (the reads deferred meanwhile go out as soon as one finishes).
    while (!settled) {
      held.shift()?.()
      await nextTurn()
    }
    const answers = await all
    answers.forEach((m, i) => expect(m).toEqual(meta(i % 1_000 % 300)))
    expect(peak).toBe(cap)
  })
})

describe('a point read waiting for a MultiGet', () => {
  it('should fail at its deadline even if no MultiGet finishes, and leave the others to answer', async () => {
    const held: (() => void)[] = []
    let gated = false
    // Reader MultiGets finish only when the test lets them, once gated.
    const engine = overridingHandles({
      reader: (handle) => ({
        getManySettled: async (keys): Promise<SettledValues> => {
          const result = handle.getManySettled!(keys)
          if (gated) await new Promise<void>((resolve) => held.push(resolve))
          return result
        },
      }),
    })
    const h = await harness({ readers: { min: 1, max: 1 } }, engine)
    const { token } = await h.index.batchPut('t', 1, Array.from({ length: 10 }, (_, i) => meta(i)))
    await untilReaderCovers(h, 't', 1, token, 'm0')
    gated = true
    onTestFinished(() => {
      gated = false
      for (const release of held.splice(0)) release()
    })
    const cap = Math.max(1, Math.floor((Number(process.env.UV_THREADPOOL_SIZE) || 4) / 2))
    // One read per turn: each takes a MultiGet of its own, until every slot is held.
    const first: Promise<MessageMeta | undefined>[] = []
    for (let k = 0; k < cap; k++) {
      first.push(h.index.getByMsgId('t', 1, `m${k}`))
      for (let turn = 0; turn < 3; turn++) await nextTurn()
    }
    expect(held.length).toBe(cap)
    await timesOutAtDeadline(h, h.index.getByMsgId('t', 1, `m${cap}`, { timeoutMs: 1_000 }), 'MultiGet to finish')
    expect(held.length).toBe(cap)
    gated = false
    for (const release of held.splice(0)) release()
    expect(await Promise.all(first)).toEqual(Array.from({ length: cap }, (_, k) => meta(k)))
  })
})

describe('point reads waiting for a MultiGet, when one finishes', () => {
  /**
   * A harness whose reader MultiGets are held once `gate.on`: each records its handle's path and waits until
   * released (`release()` lets the oldest go); `drain(reads)` releases one at a time, a few turns apart, until every
   * read settled, and returns their answers.
   */
  const gated = async (shards: number) => {
    const held: (() => void)[] = []
    const started: string[] = []
    // `writes`: the primary's write batches wait too, until `heldWrite` is called.
    const gate: { on: boolean; writes: boolean; heldWrite?: () => void } = { on: false, writes: false }
    const engine = overridingHandles({
      reader: (handle) => ({
        getManySettled: async (keys): Promise<SettledValues> => {
          const result = handle.getManySettled!(keys)
          if (!gate.on) return result
          started.push(handle.path)
          await new Promise<void>((resolve) => held.push(resolve))
          return result
        },
      }),
      primary: (handle) => ({
        write: async (ops) => {
          if (gate.writes) await new Promise<void>((resolve) => (gate.heldWrite = resolve))
          return handle.write(ops)
        },
      }),
    })
    const h = await harness({ shards, readers: { min: 1, max: 1 } }, engine)
    // Should an expectation fail, the held MultiGets are let go, so that the index can close.
    onTestFinished(() => {
      gate.on = false
      gate.writes = false
      gate.heldWrite?.()
      for (const release of held.splice(0)) release()
    })
    const settleTurns = async () => {
      for (let turn = 0; turn < 5; turn++) await nextTurn()
    }
    const drain = async <T,>(reads: Promise<T>[]): Promise<T[]> => {
      let settled = false
      const all = Promise.all(reads).finally(() => (settled = true))
      while (!settled) {
        held.shift()?.()
        await settleTurns()
      }
      return all
    }
    return { h, held, started, gate, settleTurns, release: () => held.shift()?.(), drain }
  }
  const cap = Math.max(1, Math.floor((Number(process.env.UV_THREADPOOL_SIZE) || 4) / 2))

  it('should route only the reads the free MultiGets take, not every read waiting', async () => {
    const { h, gate, drain } = await gated(1)
    const { token } = await h.index.batchPut('t', 1, Array.from({ length: 300 }, (_, i) => meta(i)))
    await untilReaderCovers(h, 't', 1, token, 'm0')
    // The reader stays where it is, one write behind: every read is routed to it merged with the memory of recent
    // writes, which it asks once per read routed.
    h.faults.failNext('open', 1_000_000, { role: 'reader' })
    await h.index.batchPut('t', 1, [meta(1_000)])
    const asked = vi.spyOn(RecentWrites.prototype, 'newer')
    onTestFinished(() => asked.mockRestore())
    gate.on = true
    const n = 4_000
    const answers = await drain(Array.from({ length: n }, (_, i) => h.index.getByMsgId('t', 1, `m${i % 300}`)))
    answers.forEach((m, i) => expect(m).toEqual(meta(i % 300)))
    // Each read is routed when it is issued, and once more when a MultiGet takes it: routing every waiting read after
    // every MultiGet asked the memory about ten times per read here.
    expect(asked.mock.calls.length).toBeLessThanOrEqual(2 * n)
  })

  it('should let shards whose reads wait take the free MultiGets in turn', async () => {
    const { h, started, gate, drain } = await gated(4)
    const partitions: number[] = []
    for (let p = 0; partitions.length < 2; p++) if (!partitions.some((q) => h.shardId('t', q) === h.shardId('t', p))) partitions.push(p)
    for (const p of partitions) {
      const { token } = await h.index.batchPut('t', p, Array.from({ length: 300 }, (_, i) => meta(i)))
      await untilReaderCovers(h, 't', p, token, 'm0')
    }
    gate.on = true
    // 2,000 reads of each shard, those of the first issued first: 8 MultiGets of 256 keys each.
    const reads = partitions.flatMap((p) => Array.from({ length: 2_000 }, (_, i) => h.index.getByMsgId('t', p, `m${i % 300}`)))
    const answers = await drain(reads)
    answers.forEach((m, i) => expect(m).toEqual(meta(i % 2_000 % 300)))
    const shards = [...new Set(started)]
    expect(shards).toHaveLength(2)
    // Until the MultiGet that ended one shard's backlog, both had reads waiting: from the first that waited for
    // another to finish, no shard took two in a row.
    const whileBoth = started.slice(0, Math.min(...shards.map((s) => started.lastIndexOf(s))) + 1)
    expect(whileBoth.length).toBeGreaterThan(cap + 4)
    for (let i = cap + 1; i < whileBoth.length; i++) {
      expect(whileBoth[i], `MultiGets started, by shard: ${started.map((s) => shards.indexOf(s)).join(' ')}`).not.toBe(whileBoth[i - 1])
    }
  })

  it('should go on sending the reads waiting when those it sent start no MultiGet (answered from memory meanwhile)', async () => {
    const { h, held, gate, settleTurns } = await gated(1)
    const { token } = await h.index.batchPut('t', 1, Array.from({ length: 300 }, (_, i) => meta(i)))
    await untilReaderCovers(h, 't', 1, token, 'm0')
    // The reader stays one write behind: every read is merged with the memory of recent writes.
    h.faults.failNext('open', 1_000_000, { role: 'reader' })
    await h.index.batchPut('t', 1, [meta(1_000)])
    gate.on = true
    const reads = Array.from({ length: 2_000 }, (_, i) => h.index.getByMsgId('t', 1, `m${i % 300}`))
    await settleTurns()
    expect(held.length).toBe(cap)
    // Every key read is written again: the reads still waiting are answered from the memory of recent writes.
    await h.index.batchPut('t', 1, Array.from({ length: 300 }, (_, i) => ({ ...meta(i), msgLen: 99 })))
    let settled = false
    const all = Promise.all(reads).finally(() => (settled = true))
    // The held MultiGets finish and no other starts: the reads left go all the same, none left behind.
    for (const release of held.splice(0)) release()
    for (let turn = 0; turn < 50 && !settled; turn++) await nextTurn()
    expect(settled).toBe(true)
    ;(await all).forEach((m, i) => expect(m?.msgId).toBe(`m${i % 300}`))
    expect(held.length).toBe(0)
  })

  it('should fail a waiting read at once when its signal aborts, however far back it waits, though no MultiGet finishes', async () => {
    const { h, held, gate, settleTurns, drain } = await gated(1)
    const { token } = await h.index.batchPut('t', 1, Array.from({ length: 300 }, (_, i) => meta(i)))
    await untilReaderCovers(h, 't', 1, token, 'm0')
    gate.on = true
    // The reads waiting share a signal that never aborts: its listeners go as they leave the wait.
    const kept = new AbortController()
    const reads = Array.from({ length: 1_200 }, (_, i) => h.index.getByMsgId('t', 1, `m${i % 300}`, { signal: kept.signal }))
    const controller = new AbortController()
    let outcome: unknown = 'pending'
    h.index.getByMsgId('t', 1, 'm7', { signal: controller.signal }).then(
      (m) => (outcome = m),
      (e: unknown) => (outcome = e),
    )
    await settleTurns()
    expect(held.length).toBe(cap)
    expect(outcome).toBe('pending')
    controller.abort()
    await settleTurns()
    // Every MultiGet still runs: the read, behind hundreds, failed on its signal alone.
    expect(held.length).toBe(cap)
    expect(outcome).toBeInstanceOf(Timeout)
    expect((outcome as Timeout).aborted).toBe(true)
    expect((outcome as Timeout).message).toContain('MultiGet to finish')
    expect(getEventListeners(kept.signal, 'abort').length).toBeGreaterThan(0)
    ;(await drain(reads)).forEach((m, i) => expect(m).toEqual(meta(i % 300)))
    expect(getEventListeners(kept.signal, 'abort')).toHaveLength(0)
  })

  it('should send a read only the primary serves in its turn among the reads waiting, not after every younger one', async () => {
    const { h, gate, drain } = await gated(1)
    const { token } = await h.index.batchPut('t', 1, Array.from({ length: 300 }, (_, i) => meta(i)))
    await untilReaderCovers(h, 't', 1, token, 'm0')
    gate.on = true
    const order: string[] = []
    const read = (label: string, options?: { consistency: 'primary' }) =>
      h.index.getByMsgId('t', 1, 'm1', options).then((m) => {
        order.push(label)
        return m
      })
    // Reads wait for the MultiGets held; then one only the primary serves, then younger ones.
    const older = Array.from({ length: 1_000 }, () => read('older'))
    const primary = read('primary', { consistency: 'primary' })
    const younger = Array.from({ length: 1_000 }, () => read('younger'))
    const answers = await drain([...older, primary, ...younger])
    answers.forEach((m) => expect(m).toEqual(meta(1)))
    // The reads of one turn go out by kind (those of the primary apart): at most a turn's younger reads (256) went
    // ahead of it, sent in its turn; always sending the other kind first left it for last.
    const ahead = order.slice(0, order.indexOf('primary')).filter((label) => label === 'younger').length
    expect(ahead).toBeLessThanOrEqual(256)
  })
})

describe('writes keep their share', () => {
  /**
   * A harness of one reader over 300 metas of partition 1 (the reader covering them), whose reader's MultiGets go
   * through `multiGet` and whose primary's write batches can be held: `whileWriteHeld(fn)` runs `fn` while a write to
   * partition 2 waits, then lets the write go and waits for it (whatever `fn` did) before returning `fn`'s result;
   * `readAll` reads 2,000 lookups at once and checks every answer.
   */
  const writesHeld = async (multiGet: (handle: StorageHandle, keys: readonly Uint8Array[]) => Promise<SettledValues>) => {
    let heldWrite: (() => void) | undefined
    let holdWrites = false
    const engine = overridingHandles({
      reader: (handle) => ({ getManySettled: (keys) => multiGet(handle, keys) }),
      primary: (handle) => ({
        write: async (ops) => {
          if (holdWrites) await new Promise<void>((resolve) => (heldWrite = resolve))
          return handle.write(ops)
        },
      }),
    })
    const h = await harness({ readers: { min: 1, max: 1 } }, engine)
    const { token } = await h.index.batchPut('t', 1, Array.from({ length: 300 }, (_, i) => meta(i)))
    await untilReaderCovers(h, 't', 1, token, 'm0')
    const readAll = async (): Promise<void> => {
      const answers = await Promise.all(Array.from({ length: 2_000 }, (_, i) => h.index.getByMsgId('t', 1, `m${i % 300}`)))
      answers.forEach((m, i) => expect(m).toEqual(meta(i % 300)))
    }
    const whileWriteHeld = async <T,>(fn: () => Promise<T>): Promise<T> => {
      holdWrites = true
      const write = h.index.batchPut('t', 2, [meta(1)])
      try {
        while (heldWrite === undefined) await nextTurn()
        return await fn()
      } finally {
        // Released before any assertion, so that a failing one leaves no write held for the close to wait for.
        holdWrites = false
        heldWrite?.()
        await write
      }
    }
    return { readAll, whileWriteHeld }
  }

  it('should send point reads in MultiGets of at most 64 keys while a write waits, and of more once none does', async () => {
    const sizes: number[] = []
    const { readAll, whileWriteHeld } = await writesHeld((handle, keys) => {
      sizes.push(keys.length)
      return handle.getManySettled!(keys)
    })
    const largest = async () => {
      sizes.length = 0
      await readAll()
      return Math.max(...sizes)
    }
    expect(await whileWriteHeld(largest)).toBeLessThanOrEqual(64)
    expect(await largest()).toBeGreaterThan(64)
  })

  it('should run one point-read MultiGet at a time while a write waits, and more once none does', async () => {
    let out = 0
    let most = 0
    // Each MultiGet is counted while it runs, and takes a few turns (so that another could start beside it).
    const { readAll, whileWriteHeld } = await writesHeld(async (handle, keys) => {
      most = Math.max(most, ++out)
      try {
        for (let i = 0; i < 3; i++) await nextTurn()
        return await handle.getManySettled!(keys)
      } finally {
        out--
      }
    })
    const mostAtOnce = async () => {
      most = 0
      await readAll()
      return most
    }
    expect(await whileWriteHeld(mostAtOnce)).toBe(1)
    expect(await mostAtOnce()).toBe(Math.max(1, Math.floor((Number(process.env.UV_THREADPOOL_SIZE) || 4) / 2)))
  })
})

describe('range reads share the thread pool', () => {
  /**
   * A harness whose reader's seeks (two per range read) wait for the test once `gate.on`, and whose primary's write
   * batches wait for it while `gate.writes`: `seeks` and `write` hold what waits.
   */
  const heldSeeks = async () => {
    const gate = { on: false, scans: false, writes: false, seeks: [] as (() => void)[], steps: [] as (() => void)[], write: undefined as (() => void) | undefined }
    const engine = overridingHandles({
      // A range read seeks on the view its handle's withSnapshot hands out; a scan reads its handle's chunks, each
      // held (a step of the scan running) once `gate.scans`.
      reader: (handle) => ({
        iterateChunks: (range) => {
          const chunks = chunksOf(handle, range)[Symbol.asyncIterator]()
          const held: AsyncIterableIterator<readonly Entry[]> = {
            [Symbol.asyncIterator]() {
              return held
            },
            next: async () => {
              if (gate.scans) await new Promise<void>((resolve) => gate.steps.push(resolve))
              return chunks.next()
            },
            return: async () => (await chunks.return?.()) ?? { done: true, value: undefined },
          }
          return held
        },
        withSnapshot: (fn) =>
          handle.withSnapshot((view) =>
            fn({
              getMany: (keys) => view.getMany(keys),
              iterate: (range) => view.iterate(range),
              firstKey: async (range) => {
                if (gate.on) await new Promise<void>((resolve) => gate.seeks.push(resolve))
                return firstKey(view, range)
              },
            }),
          ),
      }),
      primary: (handle) => ({
        write: async (ops) => {
          if (gate.writes) await new Promise<void>((resolve) => (gate.write = resolve))
          return handle.write(ops)
        },
      }),
    })
    const h = await harness({ readers: { min: 1, max: 1 } }, engine)
    const { token } = await h.index.batchPut('t', 1, Array.from({ length: 100 }, (_, i) => meta(i)))
    await untilReaderCovers(h, 't', 1, token, 'm0')
    gate.on = true
    // Should an expectation fail, whatever is held is let go, so that the index can close.
    onTestFinished(() => {
      gate.on = gate.scans = gate.writes = false
      for (const release of [...gate.seeks.splice(0), ...gate.steps.splice(0)]) release()
      gate.write?.()
    })
    /** Lets the held seeks go, a pair at a time, until `done` settles. */
    const drain = async (done: Promise<unknown>): Promise<void> => {
      let settled = false
      void done.finally(() => (settled = true))
      while (!settled) {
        gate.seeks.splice(0, 2).forEach((release) => release())
        await nextTurn()
      }
    }
    return { h, gate, drain }
  }
  const range = (k: number) => ({ first: { segmentId: 0, offset: k }, last: { segmentId: 0, offset: k + 1 } })

  it('should run at most 16 range reads at once, and 4 while a write waits, the others in the order they came', async () => {
    const { h, gate, drain } = await heldSeeks()
    const reads = Array.from({ length: 40 }, (_, k) => h.index.getRangeByTime('t', 1, 1000 + k, 1001 + k))
    for (let turn = 0; turn < 10; turn++) await nextTurn()
    expect(gate.seeks.length).toBe(2 * 16)
    await drain(Promise.all(reads))
    expect(await Promise.all(reads)).toEqual(Array.from({ length: 40 }, (_, k) => range(k)))
    // While a write of the process waits (its batch held), 4 at once.
    gate.writes = true
    const write = h.index.batchPut('t', 2, [meta(1)])
    while (gate.write === undefined) await nextTurn()
    const beside = Array.from({ length: 40 }, (_, k) => h.index.getRangeByTime('t', 1, 1000 + k, 1001 + k))
    for (let turn = 0; turn < 10; turn++) await nextTurn()
    expect(gate.seeks.length).toBe(2 * 4)
    // The write done, the places free up as the reads running end: 16 again.
    gate.writes = false
    gate.write()
    await write
    // None is handed over before a read running ends: one that comes meanwhile waits behind the 36 waiting (in the
    // order they came), rather than take one of the 12 places the end of the write freed ahead of them.
    const late = h.index.getRangeByTime('t', 1, 1090, 1091)
    for (let turn = 0; turn < 10; turn++) await nextTurn()
    expect(gate.seeks.length).toBe(2 * 4)
    // The first of them to run ends (its two seeks let go): its place and 12 more go to the reads waiting.
    gate.seeks.splice(0, 2).forEach((release) => release())
    expect(await beside[0]).toEqual(range(0))
    for (let turn = 0; turn < 10; turn++) await nextTurn()
    expect(gate.seeks.length).toBe(2 * (4 - 1) + 2 * (16 - 3))
    await drain(Promise.all([...beside, late]))
    expect(await Promise.all(beside)).toEqual(Array.from({ length: 40 }, (_, k) => range(k)))
    expect(await late).toEqual(range(90))
  })

  it('should give each later read of a scan a place of its own: it waits while every place is taken', async () => {
    const { h, gate, drain } = await heldSeeks()
    // 100 entries: two reads of the engine (64 entries, then 36).
    gate.on = false
    const { token } = await h.index.batchPut('t', 1, Array.from({ length: 96 }, (_, k) => meta(4 + k)))
    await untilReaderCovers(h, 't', 1, token, 'm99')
    const scan = h.index.scanByTime('t', 1, 1000, 1099)[Symbol.asyncIterator]()
    for (let k = 0; k < 64; k++) expect((await scan.next()).value).toEqual(meta(k))
    gate.on = true
    gate.scans = true
    const running = Array.from({ length: 16 }, (_, k) => h.index.getRangeByTime('t', 1, 1000 + k, 1001 + k))
    for (let turn = 0; turn < 10; turn++) await nextTurn()
    expect(gate.seeks.length).toBe(2 * 16)
    // The scan's next read waits for a place: its step has not begun.
    const next = scan.next()
    for (let turn = 0; turn < 10; turn++) await nextTurn()
    expect(gate.steps.length).toBe(0)
    await drain(Promise.all(running))
    while (gate.steps.length === 0) await nextTurn()
    gate.scans = false
    gate.steps.splice(0).forEach((release) => release())
    expect((await next).value).toEqual(meta(64))
    await scan.return?.()
  })

  it('should give a scan a place only while it reads: it waits for one, and holds none while its consumer does', async () => {
    const { h, gate, drain } = await heldSeeks()
    const running = Array.from({ length: 16 }, (_, k) => h.index.getRangeByTime('t', 1, 1000 + k, 1001 + k))
    for (let turn = 0; turn < 10; turn++) await nextTurn()
    expect(gate.seeks.length).toBe(2 * 16)
    // Every place is taken: a scan's first read waits for one.
    let firstEntry: unknown = 'pending'
    const waiting = h.index.scanByTime('t', 1, 1000, 1002)[Symbol.asyncIterator]()
    const first = waiting.next().then((r) => (firstEntry = r.value))
    for (let turn = 0; turn < 10; turn++) await nextTurn()
    expect(firstEntry).toBe('pending')
    await drain(Promise.all(running))
    expect(await first).toEqual(meta(0))
    // 20 scans, each waiting for its consumer after its first entry, hold no place: 16 range reads run at once.
    const parked = Array.from({ length: 20 }, () => h.index.scanByTime('t', 1, 1000, 1099)[Symbol.asyncIterator]())
    expect((await Promise.all(parked.map((it) => it.next()))).map((r) => r.value)).toEqual(Array.from({ length: 20 }, () => meta(0)))
    const more = Array.from({ length: 16 }, (_, k) => h.index.getRangeByTime('t', 1, 1000 + k, 1001 + k))
    for (let turn = 0; turn < 10; turn++) await nextTurn()
    expect(gate.seeks.length).toBe(2 * 16)
    await drain(Promise.all(more))
    for (const it of [waiting, ...parked]) await it.return?.()
  })

  it('should run at most 16 reads of scans at once, 1 while a write waits, each also taking a range read place', async () => {
    const { h, gate } = await heldSeeks()
    gate.scans = true
    const scans = Array.from({ length: 20 }, () => h.index.scanByTime('t', 1, 1000, 1001)[Symbol.asyncIterator]())
    const firsts = scans.map((it) => it.next())
    for (let turn = 0; turn < 10; turn++) await nextTurn()
    expect(gate.steps.length).toBe(16)
    // Their places are the range reads' too: none is left for a range read.
    const ranged = h.index.getRangeByTime('t', 1, 1000, 1001)
    for (let turn = 0; turn < 10; turn++) await nextTurn()
    expect(gate.seeks.length).toBe(0)
    const releaseSteps = async (done: Promise<unknown>) => {
      let settled = false
      void done.finally(() => (settled = true))
      while (!settled) {
        gate.steps.splice(0).forEach((release) => release())
        gate.seeks.splice(0).forEach((release) => release())
        await nextTurn()
      }
    }
    await releaseSteps(Promise.all([...firsts, ranged]))
    expect((await Promise.all(firsts)).map((r) => r.value)).toEqual(Array.from({ length: 20 }, () => meta(0)))
    await releaseSteps(Promise.all(scans.map((it) => it.return!())))
    // While a write of the process waits (its batch held): one read of a scan at a time, in the order they came,
    // and it takes one of the range reads' 4 places.
    gate.writes = true
    const write = h.index.batchPut('t', 2, [meta(1)])
    while (gate.write === undefined) await nextTurn()
    const beside = Array.from({ length: 5 }, () => h.index.scanByTime('t', 1, 1000, 1001)[Symbol.asyncIterator]())
    const got: number[] = []
    const nexts = beside.map((it, k) => it.next().then(() => got.push(k)))
    for (let turn = 0; turn < 10; turn++) await nextTurn()
    expect(gate.steps.length).toBe(1)
    const reads = Array.from({ length: 4 }, (_, k) => h.index.getRangeByTime('t', 1, 1000 + k, 1001 + k))
    for (let turn = 0; turn < 10; turn++) await nextTurn()
    expect(gate.seeks.length).toBe(2 * 3)
    // Everything let go a turn at a time: never two reads of scans at once, and the scans in the order they came.
    let most = 0
    let settled = false
    void Promise.all([...nexts, ...reads]).finally(() => (settled = true))
    while (!settled) {
      most = Math.max(most, gate.steps.length)
      gate.steps.splice(0).forEach((release) => release())
      gate.seeks.splice(0).forEach((release) => release())
      await nextTurn()
    }
    expect(most).toBe(1)
    expect(got).toEqual([0, 1, 2, 3, 4])
    expect(await Promise.all(reads)).toEqual(Array.from({ length: 4 }, (_, k) => range(k)))
    gate.writes = false
    gate.write()
    await write
    await releaseSteps(Promise.all(beside.map((it) => it.return!())))
  })

  /**
   * Every place taken by 16 range reads held at the reader, then a write after the reader's view (m150, at 1150): a
   * read of a window holding 1150 that comes now is routed to the primary (the reader is asked to refresh), and waits
   * for its place. `untilViewHoldsWrite` waits for that refresh.
   */
  const placesTakenAndWindowWritten = async () => {
    const held = await heldSeeks()
    const { h, gate } = held
    const running = Array.from({ length: 16 }, (_, k) => h.index.getRangeByTime('t', 1, 1000 + k, 1001 + k))
    for (let turn = 0; turn < 10; turn++) await nextTurn()
    expect(gate.seeks.length).toBe(2 * 16)
    const { token } = await h.index.batchPut('t', 1, [meta(150)])
    const seq = Number(token.slice(token.lastIndexOf('@') + 1))
    const shard = () => h.index.stats().shards.find((s) => s.id === h.shardId('t', 1))!
    const untilViewHoldsWrite = async (): Promise<void> => {
      for (let i = 0; i < 10_000 && !shard().views.some((v) => v.sequence >= seq); i++) await new Promise((resolve) => setTimeout(resolve, 1))
      expect(shard().views.some((v) => v.sequence >= seq)).toBe(true)
    }
    /**
     * While a read holds the reader: a write (m151) and a read of its window, served by the primary, which asks the
     * reader to refresh; once the new view serves, the old one's handle is still open (the primary's, the new view's
     * and the old view's): a read running on a handle keeps it open. The caller then ends the read and sees it close.
     */
    const refreshWhileHeld = async (): Promise<void> => {
      const { token: later } = await h.index.batchPut('t', 1, [meta(151)])
      const laterSeq = Number(later.slice(later.lastIndexOf('@') + 1))
      expect(await h.index.getRangeByTime('t', 1, 1151, 1151)).toEqual({ first: { segmentId: 0, offset: 151 }, last: { segmentId: 0, offset: 151 } })
      await waitFor(() => shard().views.some((v) => v.sequence >= laterSeq))
      expect(h.faults.liveHandles).toBe(3)
    }
    return { ...held, running, shard, untilViewHoldsWrite, refreshWhileHeld }
  }

  it('should send a scan that waited for its place on the primary to a reader that serves it by then', async () => {
    const { h, drain, running, shard, untilViewHoldsWrite, refreshWhileHeld } = await placesTakenAndWindowWritten()
    const before = shard().served
    const scan = h.index.scanByTime('t', 1, 1098, 1160)[Symbol.asyncIterator]()
    const first = scan.next()
    // Its place waits behind the range reads; meanwhile the reader's view moves past the write.
    await untilViewHoldsWrite()
    await drain(Promise.all(running))
    expect((await first).value).toEqual(meta(98))
    // Served by the reader, not by the primary it was routed to when it came.
    expect(shard().served).toEqual({ ...before, readers: before.readers + 1 })
    // And held there until it ends: its reader's old handle stays open through a refresh, then closes.
    await refreshWhileHeld()
    expect((await scan.next()).value).toEqual(meta(99))
    expect((await scan.next()).value).toEqual(meta(150))
    expect((await scan.next()).done).toBe(true)
    await waitFor(() => h.faults.liveHandles === 2)
  })

  it('should send a range read that waited for its place on the primary to a reader that serves it by then', async () => {
    const { h, gate, drain, running, shard, untilViewHoldsWrite, refreshWhileHeld } = await placesTakenAndWindowWritten()
    const before = shard().served
    const read = h.index.getRangeByTime('t', 1, 1098, 1160)
    // Its place waits behind the range reads; meanwhile the reader's view moves past the write.
    await untilViewHoldsWrite()
    // The range reads end (their 32 seeks let go, the oldest first): the read's place comes, and its two seeks are
    // held at the reader, not at the primary it was routed to when it came.
    for (let k = 0; k < 16; k++) {
      gate.seeks.splice(0, 2).forEach((release) => release())
      await nextTurn()
    }
    await Promise.all(running)
    for (let turn = 0; turn < 100 && gate.seeks.length < 2; turn++) await nextTurn()
    expect(gate.seeks.length).toBe(2)
    expect(shard().served).toEqual({ ...before, readers: before.readers + 1 })
    // And counted there until it ends: its reader's old handle stays open through a refresh, then closes.
    await refreshWhileHeld()
    await drain(read)
    expect(await read).toEqual({ first: { segmentId: 0, offset: 98 }, last: { segmentId: 0, offset: 150 } })
    await waitFor(() => h.faults.liveHandles === 2)
  })

  it('should fail a range read or a scan that waits for a place at its deadline, and run the others', async () => {
    const { h, gate, drain } = await heldSeeks()
    const running = Array.from({ length: 16 }, (_, k) => h.index.getRangeByTime('t', 1, 1000 + k, 1001 + k))
    for (let turn = 0; turn < 10; turn++) await nextTurn()
    expect(gate.seeks.length).toBe(2 * 16)
    await timesOutAtDeadline(h, h.index.getRangeByTime('t', 1, 1000, 1001, { timeoutMs: 1_000 }), 'range read to finish')
    // A scan's first read too.
    await timesOutAtDeadline(h, h.index.scanByTime('t', 1, 1000, 1001, { timeoutMs: 1_000 })[Symbol.asyncIterator]().next(), 'range read to finish')
    await drain(Promise.all(running))
    expect(await Promise.all(running)).toEqual(Array.from({ length: 16 }, (_, k) => range(k)))
    // The places handed to the two that timed out came back: 16 run at once again.
    const again = Array.from({ length: 16 }, (_, k) => h.index.getRangeByTime('t', 1, 1000 + k, 1001 + k))
    for (let turn = 0; turn < 10; turn++) await nextTurn()
    expect(gate.seeks.length).toBe(2 * 16)
    await drain(Promise.all(again))
  })
})
