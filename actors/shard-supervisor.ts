/**
 * The shard supervisor: one per (topic, shard) directory. It owns one primary and an elastic pool of readers, and
 * applies the child specs of {@link ShardPolicy}: a failed reader is replaced (one_for_one) after a backoff; a failed
 * primary is reopened after a backoff; past a child kind's restart intensity the shard escalates: readers exhausted
 * => pool `degraded` (reads go to the primary), primary exhausted => primary `failed` (its requests fail with
 * `ShardUnavailable`) until `RECOVER`. Other shards never notice: the escalation stops here.
 *
 * Two parallel regions: `primary` (starting, up, restarting, failed; `absent` in reader mode, where another process
 * owns the primary) and `pool` (healthy, degraded). Shutdown is
 * ordered: readers first, then the primary. Pure logic: time and jitter come from `env` in the input.
 */
import { assign, enqueueActions, sendTo, setup, stopChild, type DoneActorEvent, type ErrorActorEvent } from 'xstate'
import type { LifecycleEvent } from './events.js'
import { addRestart, backoffDelay, isFatal, shouldRestart, type ChildSpec, type SupervisorEnv } from './policy.js'
import { primaryMachine, type PrimaryOutput, type PrimaryReport } from './primary.js'
import { readerMachine, type ReaderOutput, type ReaderReport } from './reader.js'

/** The supervision policy of one shard. Defaults: `src/defaults.ts`. */
export interface ShardPolicy {
  readonly primary: ChildSpec
  readonly readers: ChildSpec & {
    /** Readers kept open while the pool is healthy (after the primary first opened). */
    readonly min: number
    /** Most readers at once. */
    readonly max: number
  }
}

/** What the root supervisor gives a new shard supervisor. */
export interface ShardInput {
  readonly shardId: string
  /** `writer`: one primary and readers; `reader`: readers only (another process owns the primary). */
  readonly mode: 'writer' | 'reader'
  readonly policy: ShardPolicy
  readonly env: SupervisorEnv
}

/**
 * Events a shard supervisor accepts from the runtime. `SCALE_UP`: reads are queueing, add a reader if below max.
 * `RETIRE`: retire a reader (`idle`: only while above min; `lifetime`: always, it is replaced if the pool falls below
 * min). `REFRESH`/`FAULT`: forwarded to the named child (ignored if it is gone). `RECOVER`: restart what exhausted
 * its intensity. `CLOSE`: ordered shutdown.
 */
export type ShardCommand =
  | { type: 'SCALE_UP' }
  | { type: 'RETIRE'; readerId: string; reason: 'idle' | 'lifetime' }
  | { type: 'REFRESH'; readerId: string }
  | { type: 'FAULT'; actor: string; error: unknown; lease?: string }
  | { type: 'RECOVER' }
  | { type: 'CLOSE' }

type Verdict =
  | { type: 'PRIMARY.RESTART'; delayMs: number }
  | { type: 'PRIMARY.GIVE_UP'; error: unknown }
  | { type: 'READER.RESTART'; delayMs: number; readerId: string }
  | { type: 'READER.GIVE_UP'; error: unknown }
  | { type: 'READER.REPLACE' }

type ShardEvent =
  | ShardCommand
  | PrimaryReport
  | ReaderReport
  | Verdict
  | DoneActorEvent<PrimaryOutput | ReaderOutput, string>
  | ErrorActorEvent<unknown, string>

/** Restart bookkeeping for one kind of child. */
interface RestartBook {
  /** Restarts inside the intensity window (timestamps). */
  readonly history: readonly number[]
  /** Consecutive restarts since the last stable period (drives the backoff). */
  readonly attempt: number
  /** Total restarts ever (for stats). */
  readonly total: number
}

/** The shard supervisor's context. Everything but `env` is plain data. */
export interface ShardContext {
  readonly shardId: string
  readonly mode: 'writer' | 'reader'
  readonly policy: ShardPolicy
  readonly env: SupervisorEnv
  readonly primaryRestarts: RestartBook
  readonly readerRestarts: RestartBook
  /** When the current primary became ready. */
  readonly primaryUpSince: number | undefined
  /** Whether a primary child exists (not yet exited). */
  readonly primaryAlive: boolean
  /**
   * Whether readers can open: a primary of this shard has opened the directory (so it exists), or the index is in
   * reader mode (another process writes the directory).
   */
  readonly readable: boolean
  /** Live reader children: `serving` counts toward min/max, `retiring` is on its way out. */
  readonly readers: Readonly<Record<string, 'serving' | 'retiring'>>
  /** When each reader became ready. */
  readonly readerUpSince: Readonly<Record<string, number>>
  readonly nextReaderNumber: number
  /** The failure that made the shard give up on its primary (or, in reader mode, its readers), until RECOVER. */
  readonly failure: unknown
  /** The primary was let go as its restart type says (`temporary`, or `transient` closing normally), not given up on. */
  readonly primaryLetGo: boolean
}

const emptyBook: RestartBook = { history: [], attempt: 0, total: 0 }
const errorText = (e: unknown): string => (e instanceof Error ? e.message : String(e))
/** A `notify` action object, for use inside the actions defined in `setup` (which cannot name siblings by type). */
const notify = (params: LifecycleEvent) => ({ type: 'notify', params }) as never
const servingCount = (c: ShardContext): number => Object.values(c.readers).filter((s) => s === 'serving').length
const readerOutput = (e: ShardEvent): ReaderOutput | undefined => {
  if (!e.type.startsWith('xstate.done.actor.')) return undefined
  const out = (e as DoneActorEvent<PrimaryOutput | ReaderOutput>).output
  return out !== undefined && 'readerId' in out ? out : undefined
}
const crashedChild = (e: ShardEvent): string | undefined =>
  e.type.startsWith('xstate.error.actor.') ? e.type.slice('xstate.error.actor.'.length) : undefined

/**
 * Judges one exit of a child of `spec`: restart it (after which delay), let it go (its restart type says so: no
 * escalation, as in OTP), or give up (intensity exceeded, or a fatal error: escalate). Pure given `now` and `random`.
 */
const judge = (
  book: RestartBook,
  spec: ChildSpec,
  upSince: number | undefined,
  failed: boolean,
  env: SupervisorEnv,
  error: unknown,
): { book: RestartBook; restart: boolean; letGo?: true; delayMs: number } => {
  if (!shouldRestart(spec.restart, failed)) return { book, restart: false, letGo: true, delayMs: 0 }
  // Restarting cannot cure it: give up now rather than after a whole intensity of backoffs.
  if (isFatal(error)) return { book, restart: false, delayMs: 0 }
  const now = env.now()
  const stable = upSince !== undefined && now - upSince >= spec.resetAfterMs
  const attempt = stable ? 0 : book.attempt
  const decision = addRestart(book.history, now, spec.intensity)
  const delayMs = backoffDelay(attempt, spec.backoff, env.random())
  return {
    book: { history: decision.history, attempt: attempt + 1, total: book.total + (decision.allowed ? 1 : 0) },
    restart: decision.allowed,
    delayMs,
  }
}

export const shardSupervisorMachine = setup({
  types: {
    context: {} as ShardContext,
    input: {} as ShardInput,
    events: {} as ShardEvent,
  },
  actors: {
    primary: primaryMachine,
    reader: readerMachine,
  },
  actions: {
    /** Announces a lifecycle event (the runtime publishes it on `index.events`). */
    notify: (_, _params: LifecycleEvent) => {},
    /** The primary is exhausted (or failed fatally): the runtime fails the shard's queued requests with ShardUnavailable. */
    primaryExhausted: (_, _params: { shardId: string; error: unknown }) => {},
    /** The readers are exhausted (or failed fatally): in reader mode the runtime fails the shard's reads with ShardUnavailable. */
    readersExhausted: (_, _params: { shardId: string; error: unknown }) => {},
    /** Judges the primary's exit (done or crashed): stop it, record the restart, raise RESTART or GIVE_UP. */
    judgePrimary: enqueueActions(({ context, event, enqueue }) => {
      const output = (event as DoneActorEvent<PrimaryOutput>).output as PrimaryOutput | undefined
      const error = output === undefined ? (event as ErrorActorEvent).error : output.error
      const failed = output === undefined || output.outcome === 'failed'
      enqueue.stopChild('primary')
      // A primary that closed normally did not fail (it is replaced or let go as its restart type says).
      enqueue(
        failed
          ? notify({ type: 'failed', shard: context.shardId, actor: 'primary', detail: errorText(error) })
          : notify({ type: 'retired', shard: context.shardId, actor: 'primary', detail: `closed normally (restart: ${context.policy.primary.restart})` }),
      )
      const verdict = judge(context.primaryRestarts, context.policy.primary, context.primaryUpSince, failed, context.env, error)
      enqueue.assign({ primaryRestarts: verdict.book, primaryAlive: false, primaryUpSince: undefined, primaryLetGo: verdict.letGo === true, ...(verdict.restart ? {} : { failure: error }) })
      enqueue.raise(verdict.restart ? { type: 'PRIMARY.RESTART', delayMs: verdict.delayMs } : { type: 'PRIMARY.GIVE_UP', error })
    }),
    /** Judges a reader's exit: forget it; a failure is restarted or gives up; a retirement below min is replaced. */
    judgeReader: enqueueActions(({ context, event, enqueue }) => {
      const output = readerOutput(event)
      const readerId = output?.readerId ?? crashedChild(event)!
      if (!(readerId in context.readers)) return
      const { [readerId]: _gone, ...readers } = context.readers
      const { [readerId]: upSince, ...readerUpSince } = context.readerUpSince
      enqueue.stopChild(readerId)
      enqueue.assign({ readers, readerUpSince })
      const failed = output === undefined || output.outcome === 'failed'
      if (!failed) {
        enqueue(notify({ type: 'retired', shard: context.shardId, actor: readerId }))
        enqueue.raise({ type: 'READER.REPLACE' })
        return
      }
      const error = output === undefined ? (event as ErrorActorEvent).error : output.error
      enqueue(notify({ type: 'failed', shard: context.shardId, actor: readerId, detail: errorText(error) }))
      const verdict = judge(context.readerRestarts, context.policy.readers, upSince, true, context.env, error)
      // A temporary reader is not replaced, and its failure does not escalate.
      if (verdict.letGo) return
      enqueue.assign({ readerRestarts: verdict.book })
      enqueue.raise(verdict.restart ? { type: 'READER.RESTART', delayMs: verdict.delayMs, readerId } : { type: 'READER.GIVE_UP', error })
    }),
    /** Removes an exited reader during shutdown. */
    forgetReader: enqueueActions(({ context, event, enqueue }) => {
      const readerId = readerOutput(event)?.readerId ?? crashedChild(event)!
      const { [readerId]: _gone, ...readers } = context.readers
      enqueue.stopChild(readerId)
      enqueue.assign({ readers })
    }),
    /** Starts one more reader, after `delayMs`. */
    spawnReader: enqueueActions(({ context, enqueue }, params: { delayMs: number }) => {
      const readerId = `reader-${context.nextReaderNumber}`
      enqueue.spawnChild('reader', { id: readerId, input: { shardId: context.shardId, readerId, delayMs: params.delayMs, refreshBackoff: context.policy.readers.backoff } })
      enqueue.assign({ readers: { ...context.readers, [readerId]: 'serving' }, nextReaderNumber: context.nextReaderNumber + 1 })
    }),
    /** Starts readers until `min` serve (once the primary has opened the directory). */
    fillPool: enqueueActions(({ context, enqueue }) => {
      if (!context.readable) return
      let n = context.nextReaderNumber
      const readers = { ...context.readers }
      for (let count = servingCount(context); count < context.policy.readers.min; count++, n++) {
        const readerId = `reader-${n}`
        enqueue.spawnChild('reader', { id: readerId, input: { shardId: context.shardId, readerId, delayMs: 0, refreshBackoff: context.policy.readers.backoff } })
        readers[readerId] = 'serving'
      }
      enqueue.assign({ readers, nextReaderNumber: n })
    }),
  },
  guards: {
    primaryUp: ({ context }) => context.readable,
    readerMode: ({ context }) => context.mode === 'reader',
    canGrow: ({ context }) => context.readable && servingCount(context) < context.policy.readers.max,
    knownReader: ({ context, event }) => 'readerId' in event && typeof event.readerId === 'string' && event.readerId in context.readers,
    isReaderExit: ({ event }) => readerOutput(event) !== undefined,
    isReaderCrash: ({ event }) => {
      const id = crashedChild(event)
      return id !== undefined && id !== 'primary'
    },
    noReaders: ({ context }) => Object.keys(context.readers).length === 0,
    noPrimary: ({ context }) => !context.primaryAlive,
  },
}).createMachine({
  id: 'shard',
  context: ({ input }) => ({
    shardId: input.shardId,
    mode: input.mode,
    policy: input.policy,
    env: input.env,
    primaryRestarts: emptyBook,
    readerRestarts: emptyBook,
    primaryUpSince: undefined,
    primaryAlive: false,
    readable: input.mode === 'reader',
    readers: {},
    readerUpSince: {},
    nextReaderNumber: 1,
    failure: undefined,
    primaryLetGo: false,
  }),
  initial: 'active',
  states: {
    active: {
      type: 'parallel',
      entry: enqueueActions(({ context, enqueue }) => {
        enqueue({ type: 'notify', params: { type: 'created', shard: context.shardId, actor: 'shard' } })
        if (context.mode === 'reader') {
          enqueue.raise({ type: 'READER.REPLACE' })
          return
        }
        enqueue.spawnChild('primary', { id: 'primary', input: { shardId: context.shardId, delayMs: 0 } })
        enqueue.assign({ primaryAlive: true })
      }),
      on: {
        CLOSE: 'closing',
        REFRESH: { guard: 'knownReader', actions: sendTo(({ event }) => event.readerId, { type: 'REFRESH' }) },
        FAULT: {
          actions: enqueueActions(({ context, event, enqueue }) => {
            // Forward to a child that is still there; a fault report about a child that already exited is stale.
            if (event.actor === 'primary' ? context.primaryAlive : event.actor in context.readers) {
              enqueue.sendTo(event.actor, { type: 'FAULT', error: event.error, ...(event.lease === undefined ? {} : { lease: event.lease }) })
            }
          }),
        },
      },
      states: {
        primary: {
          initial: 'starting',
          states: {
            starting: {
              always: { guard: 'readerMode', target: 'absent' },
            },
            /** Reader mode: another process owns the primary. */
            absent: {},
            up: {},
            restarting: {},
            failed: {
              entry: [
                {
                  type: 'notify',
                  params: ({ context }) => ({
                    type: 'failed',
                    shard: context.shardId,
                    actor: 'shard',
                    detail: context.primaryLetGo
                      ? `primary not restarted (restart: ${context.policy.primary.restart}) after ${context.failure === undefined ? 'closing normally' : errorText(context.failure)}`
                      : isFatal(context.failure)
                        ? `primary failed beyond restart: ${errorText(context.failure)}`
                        : `primary restart intensity exhausted: ${errorText(context.failure)}`,
                  }),
                },
                { type: 'primaryExhausted', params: ({ context }) => ({ shardId: context.shardId, error: context.failure }) },
              ],
              on: {
                RECOVER: {
                  target: 'starting',
                  actions: enqueueActions(({ context, enqueue }) => {
                    enqueue.assign({ primaryRestarts: { ...context.primaryRestarts, history: [], attempt: 0 }, primaryAlive: true, failure: undefined })
                    enqueue.spawnChild('primary', { id: 'primary', input: { shardId: context.shardId, delayMs: 0 } })
                    enqueue({ type: 'notify', params: { type: 'recovered', shard: context.shardId, actor: 'primary' } })
                  }),
                },
              },
            },
          },
          on: {
            'PRIMARY.READY': {
              target: '.up',
              actions: enqueueActions(({ context, enqueue }) => {
                enqueue.assign({ primaryUpSince: context.env.now(), readable: true })
                enqueue({ type: 'notify', params: { type: 'opened', shard: context.shardId, actor: 'primary' } })
                if (!context.readable) enqueue.raise({ type: 'READER.REPLACE' })
              }),
            },
            'xstate.done.actor.primary': { actions: 'judgePrimary' },
            'xstate.error.actor.primary': { actions: 'judgePrimary' },
            'PRIMARY.RESTART': {
              target: '.restarting',
              actions: enqueueActions(({ context, event, enqueue }) => {
                enqueue.spawnChild('primary', { id: 'primary', input: { shardId: context.shardId, delayMs: event.delayMs } })
                enqueue.assign({ primaryAlive: true })
                enqueue({ type: 'notify', params: { type: 'restarted', shard: context.shardId, actor: 'primary', detail: `after ${event.delayMs} ms` } })
              }),
            },
            'PRIMARY.GIVE_UP': { target: '.failed' },
          },
        },
        pool: {
          initial: 'healthy',
          states: {
            healthy: {
              on: {
                SCALE_UP: { guard: 'canGrow', actions: { type: 'spawnReader', params: { delayMs: 0 } } },
                'READER.REPLACE': { actions: 'fillPool' },
                'READER.RESTART': {
                  guard: 'primaryUp',
                  actions: [
                    {
                      type: 'notify',
                      params: ({ context, event }) => ({ type: 'restarted', shard: context.shardId, actor: event.readerId, detail: `replaced by reader-${context.nextReaderNumber} after ${event.delayMs} ms` }),
                    },
                    { type: 'spawnReader', params: ({ event }) => ({ delayMs: event.delayMs }) },
                  ],
                },
                'READER.GIVE_UP': {
                  target: 'degraded',
                  actions: enqueueActions(({ context, event, enqueue }) => {
                    for (const id of Object.keys(context.readers)) enqueue.sendTo(id, { type: 'RETIRE' })
                    enqueue.assign({ readers: Object.fromEntries(Object.keys(context.readers).map((id) => [id, 'retiring' as const])) })
                    const why = isFatal(event.error) ? 'a reader failed beyond restart' : 'reader restart intensity exhausted'
                    const where = context.mode === 'reader' ? 'reads fail until recovered' : 'reads go to the primary'
                    enqueue({ type: 'notify', params: { type: 'degraded', shard: context.shardId, actor: 'shard', detail: `${why}: ${where} (${errorText(event.error)})` } })
                    enqueue({ type: 'readersExhausted', params: { shardId: context.shardId, error: event.error } })
                  }),
                },
                RETIRE: {
                  guard: 'knownReader',
                  actions: enqueueActions(({ context, event, enqueue }) => {
                    if (context.readers[event.readerId] !== 'serving') return
                    if (event.reason === 'idle' && servingCount(context) <= context.policy.readers.min) return
                    enqueue.sendTo(event.readerId, { type: 'RETIRE' })
                    enqueue.assign({ readers: { ...context.readers, [event.readerId]: 'retiring' } })
                  }),
                },
              },
            },
            degraded: {
              on: {
                RECOVER: {
                  target: 'healthy',
                  actions: [
                    assign({ readerRestarts: ({ context }) => ({ ...context.readerRestarts, history: [], attempt: 0 }), failure: undefined }),
                    'fillPool',
                    { type: 'notify', params: ({ context }) => ({ type: 'recovered', shard: context.shardId, actor: 'shard' }) },
                  ],
                },
              },
            },
          },
          on: {
            'READER.READY': {
              actions: [
                assign({ readerUpSince: ({ context, event }) => ({ ...context.readerUpSince, [event.readerId]: context.env.now() }) }),
                { type: 'notify', params: ({ context, event }) => ({ type: 'opened', shard: context.shardId, actor: event.readerId }) },
              ],
            },
            'xstate.done.actor.*': { guard: 'isReaderExit', actions: 'judgeReader' },
            'xstate.error.actor.*': { guard: 'isReaderCrash', actions: 'judgeReader' },
          },
        },
      },
    },
    closing: {
      initial: 'readers',
      states: {
        readers: {
          entry: enqueueActions(({ context, enqueue }) => {
            for (const id of Object.keys(context.readers)) enqueue.sendTo(id, { type: 'CLOSE' })
          }),
          always: { guard: 'noReaders', target: 'primary' },
          on: {
            'xstate.done.actor.*': { guard: 'isReaderExit', actions: 'forgetReader' },
            'xstate.error.actor.*': { guard: 'isReaderCrash', actions: 'forgetReader' },
          },
        },
        primary: {
          entry: enqueueActions(({ context, enqueue }) => {
            if (context.primaryAlive) enqueue.sendTo('primary', { type: 'CLOSE' })
          }),
          always: { guard: 'noPrimary', target: '#shard.closed' },
        },
      },
      // The primary may exit at any point of the shutdown (an open failing while the readers close, say): its
      // exit is recorded whichever stage sees it, or the primary stage would wait for an exit that already happened.
      on: {
        'xstate.done.actor.primary': { actions: [stopChild('primary'), assign({ primaryAlive: false })] },
        'xstate.error.actor.primary': { actions: [stopChild('primary'), assign({ primaryAlive: false })] },
      },
    },
    closed: {
      type: 'final',
      entry: { type: 'notify', params: ({ context }) => ({ type: 'closed', shard: context.shardId, actor: 'shard' }) },
    },
  },
})
