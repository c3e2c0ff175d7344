/**
 * The primary: the only read-write instance of a shard's directory. Pure logic: it names the I/O it needs
 * (`openPrimary`, `closeHandle`) and the effects on the data plane (`publish`, `withdraw`); `src/runtime.ts`
 * provides them. It never restarts itself: when it fails it releases its handle and exits with outcome `failed`,
 * and its shard supervisor decides (restart after a backoff, or give up). `waiting` is that backoff.
 *
 * ```
 * waiting --after delay--> opening --open ok--> ready --FAULT--> failed --handle released--> crashed (final)
 *                             \--open failed--> crashed (final)          ready --CLOSE--> closing --> closed (final)
 * ```
 */
import { assign, fromPromise, sendParent, setup } from 'xstate'

/** An opaque name for an open native handle; the runtime maps it to the handle and its resource scope. */
export type Lease = string

/** What a supervisor gives a new primary. */
export interface PrimaryInput {
  readonly shardId: string
  /** Backoff before opening, ms (0: open at once). */
  readonly delayMs: number
}

/** How a primary ended. `failed` carries the error that ended it. */
export interface PrimaryOutput {
  readonly outcome: 'closed' | 'failed'
  readonly error?: unknown
}

/** Events a primary accepts: the data plane reports a `FAULT` on its handle; its supervisor sends `CLOSE`. */
export type PrimaryEvent = { type: 'FAULT'; error: unknown; lease?: Lease } | { type: 'CLOSE' }

/** What a primary tells its parent, beyond its exit. */
export type PrimaryReport = { type: 'PRIMARY.READY' }

export const primaryMachine = setup({
  types: {
    context: {} as { shardId: string; delayMs: number; lease: Lease | undefined; error: unknown },
    input: {} as PrimaryInput,
    events: {} as PrimaryEvent,
    output: {} as PrimaryOutput,
  },
  actors: {
    /** Opens the shard's directory read-write; resolves with a lease. Aborted (and must release) when stopped. */
    openPrimary: fromPromise<Lease, { shardId: string }>(async () => {
      throw new Error('openPrimary is provided by the runtime')
    }),
    /** Releases a lease (closes the native handle): after its requests finish, or at once with `force`. Idempotent. */
    closeHandle: fromPromise<void, { lease: Lease; force?: boolean }>(async () => {
      throw new Error('closeHandle is provided by the runtime')
    }),
  },
  actions: {
    /** Makes the handle available to the data plane. */
    publish: (_, _params: { shardId: string; lease: Lease }) => {},
    /** Takes the handle away from the data plane (no new requests reach it). */
    withdraw: (_, _params: { shardId: string; lease: Lease }) => {},
  },
  delays: {
    backoff: ({ context }) => context.delayMs,
  },
  guards: {
    noDelay: ({ context }) => context.delayMs <= 0,
    currentLease: ({ context, event }) => event.type !== 'FAULT' || event.lease === undefined || event.lease === context.lease,
  },
}).createMachine({
  id: 'primary',
  context: ({ input }) => ({ shardId: input.shardId, delayMs: input.delayMs, lease: undefined, error: undefined }),
  initial: 'waiting',
  output: ({ context }) =>
    context.error === undefined ? { outcome: 'closed' } : { outcome: 'failed', error: context.error },
  states: {
    waiting: {
      always: { guard: 'noDelay', target: 'opening' },
      after: { backoff: 'opening' },
      on: { CLOSE: 'closed' },
    },
    opening: {
      invoke: {
        src: 'openPrimary',
        input: ({ context }) => ({ shardId: context.shardId }),
        onDone: { target: 'ready', actions: assign({ lease: ({ event }) => event.output }) },
        onError: { target: 'crashed', actions: assign({ error: ({ event }) => event.error }) },
      },
      // Stopping the open aborts it; the runtime releases a handle that arrives after the abort.
      on: { CLOSE: 'closed' },
    },
    ready: {
      entry: [
        { type: 'publish', params: ({ context }) => ({ shardId: context.shardId, lease: context.lease! }) },
        sendParent({ type: 'PRIMARY.READY' } satisfies PrimaryReport),
      ],
      exit: { type: 'withdraw', params: ({ context }) => ({ shardId: context.shardId, lease: context.lease! }) },
      on: {
        // A fault names the handle it happened on: a report about an older handle is stale and ignored.
        FAULT: { guard: 'currentLease', target: 'failed', actions: assign({ error: ({ event }) => event.error }) },
        CLOSE: 'closing',
      },
    },
    failed: {
      // A failed handle is released at once (force): requests still on it fail and are retried elsewhere, and a
      // stream left open on it cannot keep the directory (and the restart) waiting.
      invoke: {
        src: 'closeHandle',
        input: ({ context }) => ({ lease: context.lease!, force: true }),
        onDone: 'crashed',
        onError: 'crashed',
      },
    },
    closing: {
      invoke: {
        src: 'closeHandle',
        input: ({ context }) => ({ lease: context.lease! }),
        onDone: 'closed',
        onError: { target: 'closed', actions: assign({ error: ({ event }) => event.error }) },
      },
    },
    crashed: { type: 'final' },
    closed: { type: 'final' },
  },
})
