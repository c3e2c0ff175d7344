/**
 * The machines alone, with the I/O they name provided by stubs: the edges that real storage rarely produces (a close
 * that fails, a child actor that crashes, a retirement before a reader opened). The same machines run on real
 * RocksDB in the other suites; this file makes every transition reachable on purpose.
 */
import { describe, expect, it } from 'vitest'
import { createActor, fromPromise, type AnyActorRef } from 'xstate'
import { primaryMachine, readerMachine, shardSupervisorMachine, type LifecycleEvent, type ShardPolicy } from '../actors/index.js'
import { ManualClock, settle } from '../src/clock.js'
import { recordInspection } from './support/coverage.js'

const spec = { restart: 'permanent' as const, intensity: { maxRestarts: 3, withinMs: 10_000 }, backoff: { minMs: 100, maxMs: 1_000, factor: 2, jitter: 0 }, resetAfterMs: 5_000 }
const policy: ShardPolicy = { primary: spec, readers: { ...spec, restart: 'transient', min: 1, max: 2 } }

// Stubs stand in for any of the machines' named I/O (typed loosely on purpose: one stub serves several names).
const ok = fromPromise(async () => 'lease') as never
const never = fromPromise(() => new Promise<string>(() => {})) as never
const failing = fromPromise(async () => {
  throw new Error('close failed')
}) as never

describe('primary machine', () => {
  it('should close at once while waiting out its backoff or while opening', async () => {
    const clock = new ManualClock()
    const waiting = createActor(primaryMachine, { input: { shardId: 's', delayMs: 500 }, clock, inspect: recordInspection }).start()
    expect(waiting.getSnapshot().value).toBe('waiting')
    waiting.send({ type: 'CLOSE' })
    expect(waiting.getSnapshot().value).toBe('closed')
    const opening = createActor(primaryMachine.provide({ actors: { openPrimary: never } }), { input: { shardId: 's', delayMs: 0 }, inspect: recordInspection }).start()
    expect(opening.getSnapshot().value).toBe('opening')
    opening.send({ type: 'CLOSE' })
    expect(opening.getSnapshot().value).toBe('closed')
    expect(opening.getSnapshot().output).toEqual({ outcome: 'closed' })
  })
})

describe('reader machine', () => {
  const reader = (impl: Parameters<typeof readerMachine.provide>[0], delayMs = 0, clock = new ManualClock()) =>
    createActor(readerMachine.provide(impl), { input: { shardId: 's', readerId: 'reader-1', delayMs, refreshBackoff: { minMs: 100, maxMs: 1_000, factor: 2, jitter: 0 } }, clock, inspect: recordInspection }).start()

  it('should retire before it opened, from waiting or from opening', () => {
    const waiting = reader({}, 500)
    waiting.send({ type: 'RETIRE' })
    expect(waiting.getSnapshot().output).toEqual({ readerId: 'reader-1', outcome: 'retired' })
    const opening = reader({ actors: { openReader: never } })
    expect(opening.getSnapshot().value).toBe('opening')
    opening.send({ type: 'RETIRE' })
    expect(opening.getSnapshot().output).toEqual({ readerId: 'reader-1', outcome: 'retired' })
  })

  it('should close at once while waiting out its backoff or while opening', () => {
    const waiting = reader({}, 500)
    expect(waiting.getSnapshot().value).toBe('waiting')
    waiting.send({ type: 'CLOSE' })
    expect(waiting.getSnapshot().value).toBe('closed')
    expect(waiting.getSnapshot().output).toEqual({ readerId: 'reader-1', outcome: 'closed' })
    // An index closing while a reader's open still runs (test/supervision.test.ts has it on real RocksDB).
    const opening = reader({ actors: { openReader: never } })
    expect(opening.getSnapshot().value).toBe('opening')
    opening.send({ type: 'CLOSE' })
    expect(opening.getSnapshot().value).toBe('closed')
    expect(opening.getSnapshot().output).toEqual({ readerId: 'reader-1', outcome: 'closed' })
  })
})

describe('shard supervisor machine', () => {
  /** A shard whose children use stub I/O; `throwIn` makes a child's action throw (the child actor crashes). */
  const shard = (
    throwIn: { primaryPublish?: boolean; readerPublish?: boolean; primaryWithdraw?: boolean; readerWithdraw?: boolean } = {},
    closeHandle: never = ok,
  ) => {
    const events: LifecycleEvent[] = []
    const boom = (when: boolean | undefined) => () => {
      if (when) throw new Error('action crashed')
    }
    const machine = shardSupervisorMachine.provide({
      actors: {
        primary: primaryMachine.provide({
          actors: { openPrimary: ok, closeHandle },
          actions: { publish: boom(throwIn.primaryPublish), withdraw: boom(throwIn.primaryWithdraw) },
        }),
        reader: readerMachine.provide({
          actors: { openReader: ok, closeHandle, refreshReader: ok },
          actions: { publish: boom(throwIn.readerPublish), withdraw: boom(throwIn.readerWithdraw) },
        }),
      },
      actions: { notify: (_, e) => void events.push(e) },
    })
    const clock = new ManualClock()
    const actor = createActor(machine, { input: { shardId: 's', mode: 'writer', policy, env: { now: () => clock.now(), random: () => 0 } }, clock, inspect: recordInspection })
    return { actor: actor.start(), events, clock }
  }
  const children = (a: AnyActorRef) => Object.keys(a.getSnapshot().children as object).sort()

  it('should treat a crashed primary actor as a failed primary and restart it', async () => {
    const { actor, events, clock } = shard({ primaryPublish: true })
    await settle()
    expect(events.map((e) => `${e.type} ${e.actor}`)).toContain('failed primary')
    expect(actor.getSnapshot().value).toEqual({ active: { primary: 'restarting', pool: 'healthy' } })
    await clock.advance(100)
    expect(events.filter((e) => e.type === 'restarted' && e.actor === 'primary').length).toBe(2)
  })

  it('should treat a crashed reader actor as a failed reader and replace it', async () => {
    const { actor, events } = shard({ readerPublish: true })
    await settle()
    expect(events.some((e) => e.type === 'failed' && e.actor === 'reader-1')).toBe(true)
    expect(events.some((e) => e.type === 'restarted' && e.actor === 'reader-1')).toBe(true)
    expect(children(actor)).toEqual(['primary', 'reader-2'])
  })

  it('should finish closing when children crash while they close', async () => {
    const { actor } = shard({ primaryWithdraw: true, readerWithdraw: true })
    await settle()
    expect(children(actor)).toEqual(['primary', 'reader-1'])
    actor.send({ type: 'CLOSE' })
    await settle()
    expect(actor.getSnapshot().value).toBe('closed')
    expect(children(actor)).toEqual([])
  })

  it('should ignore a fault reported about a handle its child no longer holds', async () => {
    const { actor, events } = shard()
    await settle()
    actor.send({ type: 'FAULT', actor: 'reader-1', error: new Error('old view'), lease: 'an-older-lease' })
    actor.send({ type: 'FAULT', actor: 'primary', error: new Error('old handle'), lease: 'an-older-lease' })
    await settle()
    expect(events.some((e) => e.type === 'failed')).toBe(false)
    actor.send({ type: 'FAULT', actor: 'reader-1', error: new Error('current view'), lease: 'lease' })
    await settle()
    expect(events.filter((e) => e.type === 'failed').map((e) => e.actor)).toEqual(['reader-1'])
  })

  it('should go on when releasing a handle fails: after a fault, a retirement and a close', async () => {
    const { actor, events, clock } = shard({}, failing)
    await settle()
    expect(children(actor)).toEqual(['primary', 'reader-1'])
    actor.send({ type: 'FAULT', actor: 'primary', error: new Error('boom') })
    actor.send({ type: 'FAULT', actor: 'reader-1', error: new Error('boom') })
    await settle()
    expect(events.filter((e) => e.type === 'failed').map((e) => e.actor).sort()).toEqual(['primary', 'reader-1'])
    await clock.advance(100)
    expect(children(actor)).toEqual(['primary', 'reader-2'])
    actor.send({ type: 'SCALE_UP' })
    await settle()
    actor.send({ type: 'RETIRE', readerId: 'reader-3', reason: 'idle' })
    await settle()
    expect(events.some((e) => e.type === 'retired' && e.actor === 'reader-3')).toBe(true)
    actor.send({ type: 'CLOSE' })
    await settle()
    expect(actor.getSnapshot().value).toBe('closed')
  })
})

describe('shard supervisor shutdown', () => {
  it('should finish closing when the primary exits while the readers are still closing', async () => {
    let releaseReader: () => void = () => {}
    const machine = shardSupervisorMachine.provide({
      actors: {
        primary: primaryMachine.provide({ actors: { openPrimary: fromPromise(async () => 'p') as never, closeHandle: ok } }),
        reader: readerMachine.provide({
          actors: {
            openReader: ok,
            refreshReader: ok,
            // The reader's close takes a while, so the primary exits first.
            closeHandle: fromPromise(() => new Promise<void>((resolve) => (releaseReader = resolve))) as never,
          },
        }),
      },
    })
    const clock = new ManualClock()
    const actor = createActor(machine, { input: { shardId: 's', mode: 'writer', policy, env: { now: () => clock.now(), random: () => 0 } }, clock, inspect: recordInspection }).start()
    await settle()
    actor.send({ type: 'CLOSE' })
    await settle()
    expect(actor.getSnapshot().value).toEqual({ closing: 'readers' })
    // The primary fails (its handle breaks) while the shard still waits for its reader.
    actor.getSnapshot().children.primary?.send({ type: 'FAULT', error: new Error('boom') })
    await settle()
    releaseReader()
    await settle()
    expect(actor.getSnapshot().value).toBe('closed')
  })
})
