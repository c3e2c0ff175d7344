/**
 * src/opened.ts: the iterator a scan returns, which opens its shard's stream at the first `next()` and then hands
 * every `next()` to it.
 */
import { describe, expect, it } from 'vitest'
import { openedAtFirstNext } from '../src/opened.js'

/** A generator of `items` that records what happened to it in `log`. */
async function* recorded<T>(items: readonly T[], log: string[]): AsyncGenerator<T> {
  log.push('started')
  try {
    for (const item of items) yield item
    log.push('ended')
  } finally {
    log.push('finally')
  }
}

const done = { done: true, value: undefined }

describe('openedAtFirstNext', () => {
  it('should open at the first next(), start what it opened within that call, and hand over every entry', async () => {
    const log: string[] = []
    const it = openedAtFirstNext(() => {
      log.push('open')
      return recorded([1, 2], log)
    })
    expect(log).toEqual([])
    const first = it.next()
    // Opened and started before the caller's next statement (a close() issued in the same turn comes after it).
    expect(log).toEqual(['open', 'started'])
    expect(await first).toEqual({ done: false, value: 1 })
    expect(await it.next()).toEqual({ done: false, value: 2 })
    expect(await it.next()).toEqual(done)
    expect(await it.next()).toEqual(done)
    expect(log).toEqual(['open', 'started', 'ended', 'finally'])
    expect(it[Symbol.asyncIterator]()).toBe(it)
  })

  it('should answer next() calls made while it opens, in order, once opened', async () => {
    let opened!: (it: AsyncIterator<number>) => void
    const log: string[] = []
    const it = openedAtFirstNext(() => new Promise<AsyncIterator<number>>((resolve) => (opened = resolve)))
    const calls = [it.next(), it.next(), it.next()]
    opened(recorded([1, 2], log))
    expect(await Promise.all(calls)).toEqual([{ done: false, value: 1 }, { done: false, value: 2 }, done])
  })

  it('should end at once when there is nothing to open, and never open again', async () => {
    let opens = 0
    const now = openedAtFirstNext(() => {
      opens++
      return undefined
    })
    expect(await now.next()).toEqual(done)
    expect(await now.next()).toEqual(done)
    const later = openedAtFirstNext(() => {
      opens++
      return Promise.resolve(undefined)
    })
    expect(await Promise.all([later.next(), later.next()])).toEqual([done, done])
    expect(await later.next()).toEqual(done)
    expect(opens).toBe(2)
  })

  it('should fail the next() that opens with the failure of open, and end there', async () => {
    const thrown = new Error('no such shard')
    let opens = 0
    const sync = openedAtFirstNext<number>(() => {
      opens++
      throw thrown
    })
    await expect(sync.next()).rejects.toBe(thrown)
    expect(await sync.next()).toEqual(done)

    const async = openedAtFirstNext<number>(() => {
      opens++
      return Promise.reject(thrown)
    })
    const [first, second] = await Promise.allSettled([async.next(), async.next()])
    expect(first).toEqual({ status: 'rejected', reason: thrown })
    expect(second).toEqual({ status: 'fulfilled', value: done })
    expect(await async.next()).toEqual(done)
    expect(await async.return!()).toEqual(done)
    expect(opens).toBe(2)
  })

  it('should open nothing when it is returned before its first next()', async () => {
    let opens = 0
    const it = openedAtFirstNext(() => {
      opens++
      return recorded([1], [])
    })
    expect(await it.return!()).toEqual(done)
    expect(await it.next()).toEqual(done)
    expect(opens).toBe(0)
  })

  it('should return what it opened, also while it still opens', async () => {
    const log: string[] = []
    const it = openedAtFirstNext(() => recorded([1, 2, 3], log))
    expect(await it.next()).toEqual({ done: false, value: 1 })
    expect(await it.return!()).toEqual(done)
    expect(log).toEqual(['started', 'finally'])
    expect(await it.next()).toEqual(done)

    let opened!: (it: AsyncIterator<number>) => void
    const pending: string[] = []
    const later = openedAtFirstNext(() => new Promise<AsyncIterator<number>>((resolve) => (opened = resolve)))
    const first = later.next()
    const returned = later.return!()
    opened(recorded([1, 2], pending))
    expect(await first).toEqual({ done: false, value: 1 })
    expect(await returned).toEqual(done)
    expect(pending).toEqual(['started', 'finally'])
  })
})
