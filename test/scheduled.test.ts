/**
 * The property tests' scheduled engine calls (the kit's `released`, src/testing/scheduled.ts): a real call's outcome reaches its caller
 * only when the fast-check scheduler releases it, and a real call that rejects meanwhile (or is never released,
 * because the run ended) never becomes an unhandled rejection.
 */
import { fc } from '@fast-check/vitest'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { released } from '../src/testing/scheduled.js'

/** Lets every pending microtask and I/O callback run: Node reports unhandled rejections in between. */
const turn = () => new Promise<void>((resolve) => setImmediate(resolve))

describe('released', () => {
  let unhandled: unknown[] = []
  const onUnhandled = (reason: unknown) => void unhandled.push(reason)
  beforeEach(() => {
    unhandled = []
    process.on('unhandledRejection', onUnhandled)
  })
  afterEach(() => {
    process.off('unhandledRejection', onUnhandled)
  })
  const scheduler = () => fc.sample(fc.scheduler(), { numRuns: 1, seed: 1 })[0]!

  it('should hold a rejection of the real call until the scheduler releases it, and leave nothing unhandled', async () => {
    const s = scheduler()
    const error = new Error('RocksDB session is closed')
    // The caller observes the call from the start, as the runtime awaits an engine call.
    let outcome: unknown = 'pending'
    void released(s, Promise.reject(error), 'write').then(
      () => (outcome = 'resolved'),
      (e: unknown) => (outcome = e),
    )
    await turn()
    await turn()
    expect(unhandled).toEqual([])
    expect(outcome).toBe('pending')
    await s.waitAll()
    await turn()
    expect(outcome).toBe(error)
    expect(unhandled).toEqual([])
  })

  it('should leave nothing unhandled when a rejected call is never released (the run ended first)', async () => {
    const s = scheduler()
    void released(s, Promise.reject(new Error('RocksDB session is closed')), 'write')
    await turn()
    await turn()
    expect(s.count()).toBe(1)
    expect(unhandled).toEqual([])
  })

  it('should hand a value to the caller only once the scheduler releases it', async () => {
    const s = scheduler()
    let outcome: unknown = 'pending'
    void released(s, Promise.resolve(42), 'getMany').then((v) => (outcome = v))
    await turn()
    expect(outcome).toBe('pending')
    await s.waitAll()
    expect(outcome).toBe(42)
  })
})
