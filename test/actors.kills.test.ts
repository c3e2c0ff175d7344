/**
 * The supervision edges that the example and property suites did not pin down, found by mutation testing
 * (TESTING.md, "Mutation testing"): the machines of actors/ with their I/O scripted, on a ManualClock. Each test states
 * exact delays, children, states and events, so that a changed guard, bound, delay or action fails it.
 */
import { describe, expect, it } from 'vitest'
import { createActor, fromPromise, type AnyActorRef } from 'xstate'
import {
  addRestart,
  backoffDelay,
  primaryMachine,
  readerMachine,
  rootSupervisorMachine,
  shardSupervisorMachine,
  shouldRestart,
  type ChildSpec,
  type LifecycleEvent,
  type ShardPolicy,
} from '../actors/index.js'
import { isFatal } from '../actors/policy.js'
import { ManualClock, settle } from '../src/clock.js'

const backoff = { minMs: 100, maxMs: 1_000, factor: 2, jitter: 0 }
const spec: ChildSpec = { restart: 'permanent', intensity: { maxRestarts: 3, withinMs: 10_000 }, backoff, resetAfterMs: 5_000 }
const makePolicy = (primary: Partial<ChildSpec> = {}, readers: Partial<ShardPolicy['readers']> = {}): ShardPolicy => ({
  primary: { ...spec, ...primary },
  readers: { ...spec, restart: 'transient', min: 1, max: 2, ...readers },
})

/** What a scripted open does: resolve a fresh lease, reject, or never settle. */
type Outcome = 'ok' | 'fail' | 'hang'

/**
 * A shard supervisor whose children's I/O follows `script` (outcomes consumed in order; `ok` once it runs out), with
 * every action the runtime would provide recorded in `log` and every lifecycle event in `events`.
 */
const scriptedShard = (
  options: {
    policy?: ShardPolicy
    mode?: 'writer' | 'reader'
    primaryOpens?: Outcome[]
    readerOpens?: Outcome[]
    refreshes?: Outcome[]
    closes?: Outcome[]
    /** How the readers' releases go, in order (`ok` once it runs out; `hang`: that reader stays `retiring`). */
    readerCloses?: Outcome[]
    random?: () => number
    start?: number
  } = {},
) => {
  const events: LifecycleEvent[] = []
  const log: string[] = []
  const clock = new ManualClock(options.start ?? 0)
  const queues = { primary: [...(options.primaryOpens ?? [])], reader: [...(options.readerOpens ?? [])], refresh: [...(options.refreshes ?? [])], close: [...(options.closes ?? [])], readerClose: [...(options.readerCloses ?? [])] }
  let leases = 0
  const run = (queue: Outcome[], what: string) =>
    new Promise<string>((resolve, reject) => {
      const outcome = queue.shift() ?? 'ok'
      if (outcome === 'ok') resolve(`${what}-${++leases}`)
      else if (outcome === 'fail') reject(new Error(`${what} failed`))
    })
  const machine = shardSupervisorMachine.provide({
    actors: {
      primary: primaryMachine.provide({
        actors: {
          openPrimary: fromPromise(() => run(queues.primary, 'p')) as never,
          closeHandle: fromPromise(async ({ input }: { input: { lease: string; force?: boolean } }) => {
            log.push(`close ${input.lease}${input.force ? ' force' : ''}`)
            if ((queues.close.shift() ?? 'ok') === 'fail') throw new Error('close failed')
          }) as never,
        },
        actions: {
          publish: (_, p) => void log.push(`publish ${p.lease}`),
          withdraw: (_, p) => void log.push(`withdraw ${p.lease}`),
        },
      }),
      reader: readerMachine.provide({
        actors: {
          openReader: fromPromise(() => run(queues.reader, 'r')) as never,
          refreshReader: fromPromise(() => run(queues.refresh, 'v')) as never,
          closeHandle: fromPromise(async ({ input }: { input: { lease: string; force?: boolean } }) => {
            log.push(`close ${input.lease}${input.force ? ' force' : ''}`)
            // Scripted apart from `run`: a release takes no lease number, so the other tests' leases stay as they are.
            if ((queues.readerClose.shift() ?? 'ok') === 'hang') await new Promise<never>(() => {})
          }) as never,
        },
        actions: {
          publish: (_, p) => void log.push(`publish ${p.readerId} ${p.lease}`),
          withdraw: (_, p) => void log.push(`withdraw ${p.readerId} ${p.lease}`),
          swap: (_, p) => void log.push(`swap ${p.readerId} ${p.from}->${p.to}`),
          refreshFailed: (_, p) => void log.push(`refreshFailed ${p.readerId} ${(p.error as Error).message}`),
          refreshAllowed: (_, p) => void log.push(`refreshAllowed ${p.readerId}`),
        },
      }),
    },
    actions: {
      notify: (_, e) => void events.push(e),
      primaryExhausted: (_, p) => void log.push(`primaryExhausted ${p.shardId} ${errorOf(p.error)}`),
      readersExhausted: (_, p) => void log.push(`readersExhausted ${p.shardId} ${errorOf(p.error)}`),
    },
  })
  const actor = createActor(machine, {
    input: { shardId: 's', mode: options.mode ?? 'writer', policy: options.policy ?? makePolicy(), env: { now: () => clock.now(), random: options.random ?? (() => 0) } },
    clock,
  }).start()
  const said = (type: LifecycleEvent['type'], actor?: string) => events.filter((e) => e.type === type && (actor === undefined || e.actor === actor))
  return { actor, events, log, clock, said, children: () => children(actor), value: () => actor.getSnapshot().value, context: () => actor.getSnapshot().context }
}
const errorOf = (e: unknown) => (e instanceof Error ? e.message : String(e))
const children = (a: AnyActorRef) => Object.keys(a.getSnapshot().children as object).sort()
const fault = (message = 'boom') => new Error(message)
const fatal = (message = 'damaged') => Object.assign(new Error(message), { fatal: true })

describe('backoffDelay and the restart window, exact values', () => {
  it('should shorten a delay by jitter * random of itself, and clamp random into [0, 1]', () => {
    const b = { minMs: 1_000, maxMs: 10_000, factor: 2, jitter: 0.5 }
    expect(backoffDelay(0, b, 0)).toBe(1_000)
    expect(backoffDelay(0, b, 0.5)).toBe(750)
    expect(backoffDelay(1, b, 0.5)).toBe(1_500)
    expect(backoffDelay(0, b, 1)).toBe(500)
    expect(backoffDelay(0, b, 7)).toBe(500)
    expect(backoffDelay(0, b, -3)).toBe(1_000)
    expect(backoffDelay(0, { ...b, jitter: 1 }, 0.25)).toBe(750)
  })

  it('should grow by factor per attempt up to maxMs, treating a negative attempt as the first', () => {
    const b = { minMs: 100, maxMs: 1_000, factor: 3, jitter: 0 }
    expect([0, 1, 2, 3, 4].map((a) => backoffDelay(a, b, 0))).toEqual([100, 300, 900, 1_000, 1_000])
    expect(backoffDelay(-2, b, 0)).toBe(100)
    expect(backoffDelay(0, { minMs: 0.4, maxMs: 10, factor: 1, jitter: 0 }, 0)).toBe(0)
    expect(backoffDelay(0, { minMs: 0.6, maxMs: 10, factor: 1, jitter: 0 }, 0)).toBe(1)
  })

  it('should count only the restarts inside (now - withinMs, now], and none from the future', () => {
    const intensity = { maxRestarts: 2, withinMs: 1_000 }
    expect(addRestart([0, 500], 1_000, intensity)).toEqual({ allowed: true, history: [500, 1_000] })
    expect(addRestart([1, 500], 1_000, intensity)).toEqual({ allowed: false, history: [1, 500, 1_000] })
    expect(addRestart([500, 1_000, 1_500], 1_000, intensity)).toEqual({ allowed: false, history: [500, 1_000, 1_000] })
    expect(addRestart([], 5, { maxRestarts: 0, withinMs: 10 })).toEqual({ allowed: false, history: [5] })
    expect(addRestart([], 5, { maxRestarts: 1, withinMs: 10 })).toEqual({ allowed: true, history: [5] })
  })

  it('should restart by type, and call fatal only an error that says fatal: true', () => {
    expect([shouldRestart('permanent', false), shouldRestart('transient', false), shouldRestart('transient', true), shouldRestart('temporary', true)]).toEqual([true, false, true, false])
    expect([isFatal(fatal()), isFatal({ fatal: 'yes' }), isFatal(null), isFatal(undefined), isFatal('fatal'), isFatal({ fatal: true })]).toEqual([true, false, false, false, false, true])
  })
})

describe('the reader pool at its bounds', () => {
  it('should not grow past max on SCALE_UP, and grow again once a reader retired', async () => {
    const s = scriptedShard({ policy: makePolicy({}, { min: 1, max: 3 }) })
    await settle()
    expect(s.children()).toEqual(['primary', 'reader-1'])
    s.actor.send({ type: 'SCALE_UP' })
    s.actor.send({ type: 'SCALE_UP' })
    await settle()
    expect(s.children()).toEqual(['primary', 'reader-1', 'reader-2', 'reader-3'])
    s.actor.send({ type: 'SCALE_UP' })
    await settle()
    expect(s.children()).toEqual(['primary', 'reader-1', 'reader-2', 'reader-3'])
    expect(s.context().nextReaderNumber).toBe(4)
    // Retiring one above min takes it out of the count at once: the pool may grow again.
    s.actor.send({ type: 'RETIRE', readerId: 'reader-2', reason: 'idle' })
    s.actor.send({ type: 'SCALE_UP' })
    await settle()
    expect(s.children()).toEqual(['primary', 'reader-1', 'reader-3', 'reader-4'])
    expect(s.said('retired').map((e) => e.actor)).toEqual(['reader-2'])
  })

  it('should not retire an idle reader at min, but retire (and replace) one whose lifetime is over', async () => {
    const s = scriptedShard({ policy: makePolicy({}, { min: 2, max: 3 }) })
    await settle()
    expect(s.children()).toEqual(['primary', 'reader-1', 'reader-2'])
    s.actor.send({ type: 'RETIRE', readerId: 'reader-1', reason: 'idle' })
    await settle()
    expect(s.children()).toEqual(['primary', 'reader-1', 'reader-2'])
    expect(s.said('retired')).toEqual([])
    s.actor.send({ type: 'RETIRE', readerId: 'reader-1', reason: 'lifetime' })
    await settle()
    expect(s.children()).toEqual(['primary', 'reader-2', 'reader-3'])
    expect(s.said('retired').map((e) => e.actor)).toEqual(['reader-1'])
    expect(s.log).toContain('close r-2')
    // A retirement of a reader already retiring, or unknown, changes nothing.
    s.actor.send({ type: 'RETIRE', readerId: 'reader-9', reason: 'lifetime' })
    await settle()
    expect(s.children()).toEqual(['primary', 'reader-2', 'reader-3'])
  })

  it('should open no reader on SCALE_UP before the primary has opened the directory', async () => {
    const s = scriptedShard({ primaryOpens: ['hang'] })
    await settle()
    s.actor.send({ type: 'SCALE_UP' })
    await settle()
    expect(s.children()).toEqual(['primary'])
    expect(s.value()).toEqual({ active: { primary: 'starting', pool: 'healthy' } })
  })

  it('should start min readers when the primary first opens, and not again when a restarted primary opens', async () => {
    const s = scriptedShard({ policy: makePolicy({}, { min: 2, max: 4 }) })
    await settle()
    expect(s.children()).toEqual(['primary', 'reader-1', 'reader-2'])
    expect(s.said('opened').map((e) => e.actor)).toEqual(['primary', 'reader-1', 'reader-2'])
    s.actor.send({ type: 'FAULT', actor: 'primary', error: fault() })
    await settle()
    await s.clock.advance(100)
    expect(s.said('opened').map((e) => e.actor)).toEqual(['primary', 'reader-1', 'reader-2', 'primary'])
    expect(s.children()).toEqual(['primary', 'reader-1', 'reader-2'])
  })
})

describe('degrading a pool that still has several readers', () => {
  it('should retire every reader, report degraded with the cause, serve from the primary, and refill min on RECOVER', async () => {
    const s = scriptedShard({ policy: makePolicy({}, { min: 3, max: 4, intensity: { maxRestarts: 1, withinMs: 10_000 } }) })
    await settle()
    expect(s.children()).toEqual(['primary', 'reader-1', 'reader-2', 'reader-3'])
    s.actor.send({ type: 'FAULT', actor: 'reader-1', error: fault('first') })
    await settle()
    expect(s.said('restarted', 'reader-1').map((e) => e.detail)).toEqual(['replaced by reader-4 after 100 ms'])
    s.actor.send({ type: 'FAULT', actor: 'reader-2', error: fault('second') })
    await settle()
    expect(s.value()).toEqual({ active: { primary: 'up', pool: 'degraded' } })
    expect(s.said('degraded')).toEqual([{ type: 'degraded', shard: 's', actor: 'shard', detail: 'reader restart intensity exhausted: reads go to the primary (second)' }])
    expect(s.log).toContain('readersExhausted s second')
    // Every reader still there was told to retire, not just one: they all close their handles and go.
    expect(s.children()).toEqual(['primary'])
    expect(s.said('retired').map((e) => e.actor).sort()).toEqual(['reader-3', 'reader-4'])
    expect(s.log.filter((l) => l.startsWith('close r-')).sort()).toEqual(['close r-2 force', 'close r-3 force', 'close r-4'])
    // Degraded: neither SCALE_UP nor a retirement brings a reader back.
    s.actor.send({ type: 'SCALE_UP' })
    await s.clock.advance(10_000)
    expect(s.children()).toEqual(['primary'])
    s.actor.send({ type: 'RECOVER' })
    await settle()
    expect(s.value()).toEqual({ active: { primary: 'up', pool: 'healthy' } })
    expect(s.children()).toEqual(['primary', 'reader-5', 'reader-6', 'reader-7'])
    expect(s.said('recovered')).toEqual([{ type: 'recovered', shard: 's', actor: 'shard' }])
    expect(s.context().readerRestarts).toMatchObject({ history: [], attempt: 0 })
  })

  it('should degrade at once on a fatal reader failure, and say reads fail in reader mode', async () => {
    const s = scriptedShard({ mode: 'reader', policy: makePolicy({}, { min: 2, max: 2 }) })
    await settle()
    expect(s.children()).toEqual(['reader-1', 'reader-2'])
    expect(s.value()).toEqual({ active: { primary: 'absent', pool: 'healthy' } })
    s.actor.send({ type: 'FAULT', actor: 'reader-2', error: fatal('bad block') })
    await settle()
    expect(s.said('degraded').map((e) => e.detail)).toEqual(['a reader failed beyond restart: reads fail until recovered (bad block)'])
    expect(s.children()).toEqual([])
    expect(s.context().readerRestarts).toEqual({ history: [], attempt: 0, total: 0 })
  })

  it('should let a reader that exits after the pool degraded go without judging it again', async () => {
    const s = scriptedShard({ policy: makePolicy({}, { min: 2, max: 2, intensity: { maxRestarts: 0, withinMs: 10_000 } }) })
    await settle()
    s.actor.send({ type: 'FAULT', actor: 'reader-1', error: fault() })
    await settle()
    expect(s.said('degraded').length).toBe(1)
    expect(s.said('failed').map((e) => e.actor)).toEqual(['reader-1'])
    expect(s.context().readers).toEqual({})
  })
  it('should list the readers it told to retire as retiring until they exit, and refill min on RECOVER while they still close', async () => {
    // reader-1's forced release goes through; reader-2's release, once the pool degraded, never ends.
    const s = scriptedShard({ policy: makePolicy({}, { min: 2, max: 3, intensity: { maxRestarts: 0, withinMs: 10_000 } }), readerCloses: ['ok', 'hang'] })
    await settle()
    expect(s.children()).toEqual(['primary', 'reader-1', 'reader-2'])
    s.actor.send({ type: 'FAULT', actor: 'reader-1', error: fault() })
    await settle()
    expect(s.value()).toEqual({ active: { primary: 'up', pool: 'degraded' } })
    expect(s.children()).toEqual(['primary', 'reader-2'])
    expect(s.context().readers).toEqual({ 'reader-2': 'retiring' })
    // A reader on its way out does not count toward min: RECOVER starts two new ones beside it.
    s.actor.send({ type: 'RECOVER' })
    await settle()
    expect(s.children()).toEqual(['primary', 'reader-2', 'reader-3', 'reader-4'])
    expect(s.context().readers).toEqual({ 'reader-2': 'retiring', 'reader-3': 'serving', 'reader-4': 'serving' })
    // Nor toward max: one more reader fits.
    s.actor.send({ type: 'SCALE_UP' })
    await settle()
    expect(s.children()).toEqual(['primary', 'reader-2', 'reader-3', 'reader-4', 'reader-5'])
  })
})

describe('the primary given up, recovered and crashing again', () => {
  it('should give up past the intensity with the backoffs in between, fail the queued requests, and close cleanly', async () => {
    const s = scriptedShard({ policy: makePolicy({ intensity: { maxRestarts: 2, withinMs: 10_000 } }), primaryOpens: ['fail', 'fail', 'fail'] })
    await settle()
    expect(s.said('restarted', 'primary').map((e) => e.detail)).toEqual(['after 100 ms'])
    await s.clock.advance(99)
    expect(s.said('failed', 'primary').length).toBe(1)
    await s.clock.advance(1)
    expect(s.said('restarted', 'primary').map((e) => e.detail)).toEqual(['after 100 ms', 'after 200 ms'])
    await s.clock.advance(200)
    expect(s.value()).toEqual({ active: { primary: 'failed', pool: 'healthy' } })
    expect(s.said('failed', 'shard').map((e) => e.detail)).toEqual(['primary restart intensity exhausted: p failed'])
    expect(s.log).toEqual(['primaryExhausted s p failed'])
    expect(s.context()).toMatchObject({ primaryAlive: false, readable: false, primaryRestarts: { total: 2, attempt: 3 } })
    expect(s.children()).toEqual([])
    // Closing a shard whose primary gave up: nothing to close, and the shard still finishes.
    s.actor.send({ type: 'CLOSE' })
    await settle()
    expect(s.value()).toBe('closed')
    expect(s.actor.getSnapshot().status).toBe('done')
    expect(s.said('closed')).toEqual([{ type: 'closed', shard: 's', actor: 'shard' }])
  })

  it('should give up at once on a fatal open, naming it beyond restart', async () => {
    const s = scriptedShard({ primaryOpens: ['hang'] })
    await settle()
    const primary = s.actor.getSnapshot().children.primary as AnyActorRef
    s.actor.send({ type: 'CLOSE' })
    await settle()
    expect(primary.getSnapshot().status).toBe('done')
    const t = scriptedShard()
    await settle()
    t.actor.send({ type: 'FAULT', actor: 'primary', error: fatal('no CURRENT') })
    await settle()
    expect(t.value()).toEqual({ active: { primary: 'failed', pool: 'healthy' } })
    expect(t.said('failed', 'shard').map((e) => e.detail)).toEqual(['primary failed beyond restart: no CURRENT'])
    expect(t.said('restarted', 'primary')).toEqual([])
    expect(t.context().primaryRestarts).toEqual({ history: [], attempt: 0, total: 0 })
  })

  it('should restart after the first backoff when the primary crashes right after RECOVER', async () => {
    const s = scriptedShard({ policy: makePolicy({ intensity: { maxRestarts: 1, withinMs: 10_000 } }), primaryOpens: ['fail', 'fail'] })
    await settle()
    await s.clock.advance(100)
    expect(s.value()).toEqual({ active: { primary: 'failed', pool: 'healthy' } })
    s.actor.send({ type: 'RECOVER' })
    await settle()
    expect(s.said('recovered')).toEqual([{ type: 'recovered', shard: 's', actor: 'primary' }])
    expect(s.value()).toEqual({ active: { primary: 'up', pool: 'healthy' } })
    expect(s.context()).toMatchObject({ failure: undefined, primaryAlive: true })
    // It crashes at once: the window and the attempt count start over, so this is a first restart again.
    s.actor.send({ type: 'FAULT', actor: 'primary', error: fault('again') })
    await settle()
    expect(s.value()).toEqual({ active: { primary: 'restarting', pool: 'healthy' } })
    expect(s.said('restarted', 'primary').map((e) => e.detail)).toEqual(['after 100 ms', 'after 100 ms'])
    await s.clock.advance(100)
    expect(s.value()).toEqual({ active: { primary: 'up', pool: 'healthy' } })
  })

  it('should ignore RECOVER while the primary is up, and FAULT or REFRESH for children that are gone', async () => {
    const s = scriptedShard()
    await settle()
    s.actor.send({ type: 'RECOVER' })
    s.actor.send({ type: 'FAULT', actor: 'reader-7', error: fault() })
    s.actor.send({ type: 'REFRESH', readerId: 'reader-7' })
    await settle()
    expect(s.said('recovered')).toEqual([])
    expect(s.said('failed')).toEqual([])
    expect(s.children()).toEqual(['primary', 'reader-1'])
    expect(s.actor.getSnapshot().status).toBe('active')
  })

  it('should not forward a fault to a primary that already exited', async () => {
    const s = scriptedShard({ primaryOpens: ['ok', 'hang'] })
    await settle()
    s.actor.send({ type: 'FAULT', actor: 'primary', error: fault('one') })
    await settle()
    s.actor.send({ type: 'FAULT', actor: 'primary', error: fault('two') })
    await settle()
    expect(s.said('failed', 'primary').map((e) => e.detail)).toEqual(['one'])
    expect(s.actor.getSnapshot().status).toBe('active')
  })

  it('should reset the attempt count after a stable period, and not before', async () => {
    const s = scriptedShard({ policy: makePolicy({ intensity: { maxRestarts: 10, withinMs: 1_000 } }) })
    await settle()
    s.actor.send({ type: 'FAULT', actor: 'primary', error: fault() })
    await settle()
    await s.clock.advance(100)
    await s.clock.advance(4_999)
    s.actor.send({ type: 'FAULT', actor: 'primary', error: fault() })
    await settle()
    await s.clock.advance(200)
    await s.clock.advance(5_000)
    s.actor.send({ type: 'FAULT', actor: 'primary', error: fault() })
    await settle()
    expect(s.said('restarted', 'primary').map((e) => e.detail)).toEqual(['after 100 ms', 'after 200 ms', 'after 100 ms'])
    expect(s.context().primaryRestarts.total).toBe(3)
  })

  it('should restart a reader that served resetAfterMs after the shortest backoff again, and one that served less after a longer one', async () => {
    const s = scriptedShard({ readerOpens: ['fail'] })
    await settle()
    // reader-1 fails to open: the first backoff. Its replacement opens at t = 100.
    await s.clock.advance(100)
    expect(s.said('opened').map((e) => e.actor)).toEqual(['primary', 'reader-2'])
    // Up 4,999 ms: not stable, the backoff grows.
    await s.clock.advance(4_999)
    s.actor.send({ type: 'FAULT', actor: 'reader-2', error: fault() })
    await settle()
    await s.clock.advance(200)
    expect(s.said('opened').map((e) => e.actor)).toEqual(['primary', 'reader-2', 'reader-3'])
    // Up resetAfterMs (5,000 ms): stable, the backoff starts over.
    await s.clock.advance(5_000)
    s.actor.send({ type: 'FAULT', actor: 'reader-3', error: fault() })
    await settle()
    expect(s.said('restarted').map((e) => e.detail)).toEqual(['replaced by reader-2 after 100 ms', 'replaced by reader-3 after 200 ms', 'replaced by reader-4 after 100 ms'])
    expect(s.context().readerRestarts).toMatchObject({ attempt: 1, total: 3 })
  })

  it('should draw the jitter from env.random for every restart delay', async () => {
    const s = scriptedShard({ policy: makePolicy({ backoff: { ...backoff, jitter: 0.5 } }, { backoff: { ...backoff, jitter: 0.5 } }), random: () => 0.5 })
    await settle()
    s.actor.send({ type: 'FAULT', actor: 'primary', error: fault() })
    s.actor.send({ type: 'FAULT', actor: 'reader-1', error: fault() })
    await settle()
    expect(s.said('restarted').map((e) => e.detail)).toEqual(['after 75 ms', 'replaced by reader-2 after 75 ms'])
    await s.clock.advance(74)
    expect(s.value()).toEqual({ active: { primary: 'restarting', pool: 'healthy' } })
    await s.clock.advance(1)
    expect(s.value()).toEqual({ active: { primary: 'up', pool: 'healthy' } })
  })
})

describe('transient and temporary children', () => {
  it('should restart a transient primary that failed, and give up on one that closed normally', async () => {
    const s = scriptedShard({ policy: makePolicy({ restart: 'transient' }) })
    await settle()
    s.actor.send({ type: 'FAULT', actor: 'primary', error: fault() })
    await settle()
    expect(s.said('restarted', 'primary').length).toBe(1)
    await s.clock.advance(100)
    ;(s.actor.getSnapshot().children.primary as AnyActorRef).send({ type: 'CLOSE' })
    await settle()
    expect(s.said('restarted', 'primary').length).toBe(1)
    expect(s.value()).toEqual({ active: { primary: 'failed', pool: 'healthy' } })
    expect(s.context().primaryRestarts.total).toBe(1)
    // The close is announced as what it was: one failure (the fault), then a normal exit.
    expect(s.said('failed', 'primary').length).toBe(1)
    expect(s.said('retired', 'primary').map((e) => e.detail)).toEqual(['closed normally (restart: transient)'])
    // The shard's own event says why it has no primary: let go as its restart type says, not exhausted.
    expect(s.said('failed', 'shard').map((e) => e.detail)).toEqual(['primary not restarted (restart: transient) after closing normally'])
  })

  it('should never restart a temporary primary, nor count it', async () => {
    const s = scriptedShard({ policy: makePolicy({ restart: 'temporary' }) })
    await settle()
    s.actor.send({ type: 'FAULT', actor: 'primary', error: fault('gone') })
    await settle()
    await s.clock.advance(10_000)
    expect(s.said('restarted')).toEqual([])
    expect(s.value()).toEqual({ active: { primary: 'failed', pool: 'healthy' } })
    expect(s.context().primaryRestarts).toEqual({ history: [], attempt: 0, total: 0 })
    expect(s.log).toContain('primaryExhausted s gone')
    expect(s.said('failed', 'shard').map((e) => e.detail)).toEqual(['primary not restarted (restart: temporary) after gone'])
  })

  it('should replace a permanent primary that closed normally', async () => {
    const s = scriptedShard()
    await settle()
    ;(s.actor.getSnapshot().children.primary as AnyActorRef).send({ type: 'CLOSE' })
    await settle()
    expect(s.said('restarted', 'primary').map((e) => e.detail)).toEqual(['after 100 ms'])
  })

  it('should not replace a temporary reader that failed, nor count it, but still replace a retired one', async () => {
    const s = scriptedShard({ policy: makePolicy({}, { restart: 'temporary', min: 1, max: 2 }) })
    await settle()
    s.actor.send({ type: 'FAULT', actor: 'reader-1', error: fault() })
    await settle()
    await s.clock.advance(10_000)
    expect(s.children()).toEqual(['primary'])
    expect(s.context().readerRestarts).toEqual({ history: [], attempt: 0, total: 0 })
    expect(s.value()).toEqual({ active: { primary: 'up', pool: 'healthy' } })
  })

  it('should replace a failed reader only while the directory is readable', async () => {
    const s = scriptedShard({ readerOpens: ['fail'] })
    await settle()
    expect(s.said('failed', 'reader-1').map((e) => e.detail)).toEqual(['r failed'])
    expect(s.children()).toEqual(['primary', 'reader-2'])
    expect(s.context().readerRestarts).toMatchObject({ total: 1, attempt: 1 })
  })
})

describe('reader refreshes', () => {
  const reader1 = (s: ReturnType<typeof scriptedShard>) => s.actor.getSnapshot().children['reader-1'] as AnyActorRef

  it('should cool down for the refresh backoff (no jitter), growing with consecutive failures and reset by a success', async () => {
    const s = scriptedShard({ policy: makePolicy({}, { backoff: { minMs: 100, maxMs: 1_000, factor: 2, jitter: 0.9 } }), refreshes: ['fail', 'fail', 'ok', 'fail'], random: () => 0.99 })
    await settle()
    const r = reader1(s)
    const state = () => r.getSnapshot().value
    s.actor.send({ type: 'REFRESH', readerId: 'reader-1' })
    await settle()
    expect(state()).toEqual({ ready: 'cooling' })
    s.actor.send({ type: 'REFRESH', readerId: 'reader-1' })
    await s.clock.advance(99)
    expect(state()).toEqual({ ready: 'cooling' })
    await s.clock.advance(1)
    expect(state()).toEqual({ ready: 'serving' })
    s.actor.send({ type: 'REFRESH', readerId: 'reader-1' })
    await settle()
    await s.clock.advance(199)
    expect(state()).toEqual({ ready: 'cooling' })
    await s.clock.advance(1)
    s.actor.send({ type: 'REFRESH', readerId: 'reader-1' })
    await settle()
    expect(r.getSnapshot().context.refreshFailures).toBe(0)
    s.actor.send({ type: 'REFRESH', readerId: 'reader-1' })
    await settle()
    await s.clock.advance(99)
    expect(state()).toEqual({ ready: 'cooling' })
    await s.clock.advance(1)
    expect(s.log.filter((l) => l.includes('reader-1'))).toEqual([
      'publish reader-1 r-2',
      'refreshFailed reader-1 v failed',
      'refreshAllowed reader-1',
      'refreshFailed reader-1 v failed',
      'refreshAllowed reader-1',
      'swap reader-1 r-2->v-3',
      'refreshFailed reader-1 v failed',
      'refreshAllowed reader-1',
    ])
    // A fault of the swapped-out view is stale; a fault of the current one fails the reader and releases it at once.
    s.actor.send({ type: 'FAULT', actor: 'reader-1', error: fault(), lease: 'r-2' })
    await settle()
    expect(state()).toEqual({ ready: 'serving' })
    s.actor.send({ type: 'FAULT', actor: 'reader-1', error: fault('current'), lease: 'v-3' })
    await settle()
    expect(r.getSnapshot().output).toEqual({ readerId: 'reader-1', outcome: 'failed', error: fault('current') })
    expect(s.log.filter((l) => l.includes('v-3')).slice(-2)).toEqual(['withdraw reader-1 v-3', 'close v-3 force'])
    expect(s.said('failed', 'reader-1').map((e) => e.detail)).toEqual(['current'])
  })

  it('should retire a serving reader, releasing its handle without force', async () => {
    const s = scriptedShard({ policy: makePolicy({}, { min: 1, max: 2 }) })
    await settle()
    const r = reader1(s)
    s.actor.send({ type: 'RETIRE', readerId: 'reader-1', reason: 'lifetime' })
    await settle()
    expect(r.getSnapshot().output).toEqual({ readerId: 'reader-1', outcome: 'retired' })
    expect(s.log.filter((l) => / r-2( |$)/.test(l))).toEqual(['publish reader-1 r-2', 'withdraw reader-1 r-2', 'close r-2'])
  })

  it('should wait out the delay of a replacement reader on the clock before opening', async () => {
    const s = scriptedShard()
    await settle()
    s.actor.send({ type: 'FAULT', actor: 'reader-1', error: fault() })
    await settle()
    const r = s.actor.getSnapshot().children['reader-2'] as AnyActorRef
    await s.clock.advance(99)
    expect(r.getSnapshot().value).toBe('waiting')
    await s.clock.advance(1)
    expect(r.getSnapshot().value).toEqual({ ready: 'serving' })
  })
})

describe('the primary machine under its supervisor', () => {
  const primaryOf = (s: ReturnType<typeof scriptedShard>) => s.actor.getSnapshot().children.primary as AnyActorRef

  it('should exit failed with the close error when closing fails, and closed when it succeeds', async () => {
    const a = scriptedShard({ closes: ['fail'] })
    await settle()
    const pa = primaryOf(a)
    pa.send({ type: 'CLOSE' })
    await settle()
    expect(pa.getSnapshot().output).toEqual({ outcome: 'failed', error: new Error('close failed') })
    expect(a.said('failed', 'primary').map((e) => e.detail)).toEqual(['close failed'])
    const b = scriptedShard()
    await settle()
    const pb = primaryOf(b)
    pb.send({ type: 'CLOSE' })
    await settle()
    expect(pb.getSnapshot().output).toEqual({ outcome: 'closed' })
    expect(b.log.filter((l) => l.includes('p-1'))).toEqual(['publish p-1', 'withdraw p-1', 'close p-1'])
  })

  it('should fail on a fault of its current handle (or of no named handle), releasing it with force', async () => {
    const s = scriptedShard({ closes: ['fail'] })
    await settle()
    const p = primaryOf(s)
    p.send({ type: 'FAULT', error: fault('x'), lease: 'p-0' })
    expect(p.getSnapshot().value).toBe('ready')
    p.send({ type: 'FAULT', error: fault('x') })
    await settle()
    expect(p.getSnapshot().output).toEqual({ outcome: 'failed', error: fault('x') })
    expect(s.log.filter((l) => l.includes('p-1'))).toEqual(['publish p-1', 'withdraw p-1', 'close p-1 force'])
  })

  it('should wait out its backoff on the clock before opening', async () => {
    const s = scriptedShard()
    await settle()
    s.actor.send({ type: 'FAULT', actor: 'primary', error: fault() })
    await settle()
    const p = primaryOf(s)
    await s.clock.advance(99)
    expect(p.getSnapshot().value).toBe('waiting')
    await s.clock.advance(1)
    expect(p.getSnapshot().value).toBe('ready')
  })
})
describe('the shard supervisor given exits and events it must not take for a reader', () => {
  it('should finish closing when the primary actor crashes while the readers still close', async () => {
    let releaseReader: () => void = () => {}
    const machine = shardSupervisorMachine.provide({
      actors: {
        primary: primaryMachine.provide({
          actors: { openPrimary: fromPromise(async () => 'p') as never },
          // Leaving `ready` runs withdraw: throwing there crashes the primary actor (an error event, not an exit).
          actions: { withdraw: () => { throw new Error('withdraw crashed') } },
        }),
        reader: readerMachine.provide({
          actors: { openReader: fromPromise(async () => 'r') as never, closeHandle: fromPromise(() => new Promise<void>((resolve) => (releaseReader = resolve))) as never },
        }),
      },
    })
    const actor = createActor(machine, { input: { shardId: 's', mode: 'writer', policy: makePolicy(), env: { now: () => 0, random: () => 0 } } }).start()
    await settle()
    actor.send({ type: 'CLOSE' })
    await settle()
    expect(actor.getSnapshot().value).toEqual({ closing: 'readers' })
    // The shard forwards no faults once closing: the data plane's report reaches the primary directly.
    ;(actor.getSnapshot().children.primary as AnyActorRef).send({ type: 'FAULT', error: fault() })
    await settle()
    expect(actor.getSnapshot().context.primaryAlive).toBe(false)
    releaseReader()
    await settle()
    expect(actor.getSnapshot().value).toBe('closed')
  })

  it('should ignore RETIRE and REFRESH naming a reader by something other than a string', async () => {
    const s = scriptedShard({ policy: makePolicy({}, { min: 1, max: 2 }) })
    await settle()
    const notAnId = { toString: () => 'reader-1' } as never
    s.actor.send({ type: 'RETIRE', readerId: notAnId, reason: 'lifetime' })
    s.actor.send({ type: 'REFRESH', readerId: notAnId })
    await settle()
    expect(s.actor.getSnapshot().status).toBe('active')
    expect(s.children()).toEqual(['primary', 'reader-1'])
    expect(s.context().readers).toEqual({ 'reader-1': 'serving' })
    expect(s.log.filter((l) => l.includes('reader-1'))).toEqual(['publish reader-1 r-2'])
  })
})

describe('the I/O a machine names, when the runtime provides none', () => {
  const input = { delayMs: 0, shardId: 's', readerId: 'reader-1', refreshBackoff: backoff }
  /** A shard supervisor (no readers in writer mode) whose children have only the I/O given; it records the errors its actors receive. */
  const underShard = (mode: 'writer' | 'reader', provided: Parameters<typeof shardSupervisorMachine.provide>[0]['actors']) => {
    const errors: string[] = []
    const shard = createActor(shardSupervisorMachine.provide({ actors: provided ?? {} }), {
      input: { shardId: 's', mode, policy: makePolicy({}, { min: mode === 'reader' ? 1 : 0 }), env: { now: () => 0, random: () => 0 } },
      inspect: (e) => {
        if (e.type === '@xstate.event' && e.event.type.startsWith('xstate.error.actor.')) errors.push(`${e.event.type}: ${errorOf(e.event.error)}`)
      },
    }).start()
    return { shard, errors, child: (id: string) => shard.getSnapshot().children[id] as AnyActorRef }
  }
  const opens = fromPromise(async () => 'lease') as never

  it('should fail a primary with errors that name the missing openPrimary, then closeHandle', async () => {
    const open = createActor(primaryMachine, { input }).start()
    await settle()
    expect(open.getSnapshot().output).toEqual({ outcome: 'failed', error: new Error('openPrimary is provided by the runtime') })
    const { child } = underShard('writer', { primary: primaryMachine.provide({ actors: { openPrimary: opens } }) })
    await settle()
    const close = child('primary')
    close.send({ type: 'CLOSE' })
    await settle()
    expect(close.getSnapshot().output).toEqual({ outcome: 'failed', error: new Error('closeHandle is provided by the runtime') })
  })

  it('should fail a reader, its refresh and its release with errors that name the missing openReader, refreshReader, closeHandle', async () => {
    const open = createActor(readerMachine, { input }).start()
    await settle()
    expect(open.getSnapshot().output).toEqual({ readerId: 'reader-1', outcome: 'failed', error: new Error('openReader is provided by the runtime') })
    const failures: string[] = []
    const reader = readerMachine.provide({ actors: { openReader: opens }, actions: { refreshFailed: (_, p) => void failures.push(errorOf(p.error)) } })
    const { shard, errors, child } = underShard('reader', { reader })
    await settle()
    const r = child('reader-1')
    shard.send({ type: 'REFRESH', readerId: 'reader-1' })
    await settle()
    expect(failures).toEqual(['refreshReader is provided by the runtime'])
    shard.send({ type: 'RETIRE', readerId: 'reader-1', reason: 'lifetime' })
    await settle()
    // A release that fails still retires the reader: only the error event it receives says what was missing.
    expect(r.getSnapshot().output).toEqual({ readerId: 'reader-1', outcome: 'retired' })
    expect(errors.filter((e) => e.includes('closeHandle'))).toEqual([expect.stringMatching(/^xstate\.error\.actor\..*: closeHandle is provided by the runtime$/)])
  })
})
describe('the root supervisor', () => {
  it('should create each shard once, close them all and finish', async () => {
    const clock = new ManualClock()
    const root = createActor(
      rootSupervisorMachine.provide({
        actors: {
          shard: shardSupervisorMachine.provide({
            actors: {
              primary: primaryMachine.provide({ actors: { openPrimary: fromPromise(async () => 'p') as never, closeHandle: fromPromise(async () => {}) as never } }),
              reader: readerMachine.provide({ actors: { openReader: fromPromise(async () => 'r') as never, closeHandle: fromPromise(async () => {}) as never } }),
            },
          }),
        },
      }),
      { clock },
    ).start()
    const input = (shardId: string) => ({ shardId, mode: 'writer' as const, policy: makePolicy(), env: { now: () => 0, random: () => 0 } })
    root.send({ type: 'ENSURE', shard: input('a') })
    root.send({ type: 'ENSURE', shard: input('b') })
    root.send({ type: 'ENSURE', shard: input('a') })
    await settle()
    expect(children(root)).toEqual(['a', 'b'])
    expect(root.getSnapshot().context.shards).toEqual(['a', 'b'])
    root.send({ type: 'CLOSE' })
    await settle()
    expect(root.getSnapshot().value).toBe('closed')
    expect(children(root)).toEqual([])
    const empty = createActor(rootSupervisorMachine).start()
    empty.send({ type: 'CLOSE' })
    expect(empty.getSnapshot().status).toBe('done')
  })
})
