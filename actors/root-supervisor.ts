/**
 * The root supervisor: one per storage root (the seed's instance manager). It creates each shard supervisor exactly
 * once: `ENSURE` for a shard id that already has a supervisor does nothing, and because an actor handles one event
 * at a time, any number of concurrent first requests produce one shard (and so one primary open). On `CLOSE` it
 * closes every shard and finishes when all have. A shard's failure stays inside that shard (see shard-supervisor).
 */
import { enqueueActions, setup, type DoneActorEvent } from 'xstate'
import { shardSupervisorMachine, type ShardInput } from './shard-supervisor.js'

/** Events of the root supervisor. */
export type RootEvent =
  | { type: 'ENSURE'; shard: ShardInput }
  | { type: 'CLOSE' }
  | DoneActorEvent<unknown, string>

export const rootSupervisorMachine = setup({
  types: {
    context: {} as { shards: readonly string[] },
    events: {} as RootEvent,
  },
  actors: {
    shard: shardSupervisorMachine,
  },
  guards: {
    isNew: ({ context, event }) => event.type === 'ENSURE' && !context.shards.includes(event.shard.shardId),
    noShards: ({ context }) => context.shards.length === 0,
  },
}).createMachine({
  id: 'root',
  context: { shards: [] },
  initial: 'running',
  states: {
    running: {
      on: {
        ENSURE: {
          guard: 'isNew',
          actions: enqueueActions(({ context, event, enqueue }) => {
            enqueue.spawnChild('shard', { id: event.shard.shardId, input: event.shard })
            enqueue.assign({ shards: [...context.shards, event.shard.shardId] })
          }),
        },
        CLOSE: 'closing',
      },
    },
    closing: {
      entry: enqueueActions(({ context, enqueue }) => {
        for (const id of context.shards) enqueue.sendTo(id, { type: 'CLOSE' })
      }),
      always: { guard: 'noShards', target: 'closed' },
      on: {
        'xstate.done.actor.*': {
          actions: enqueueActions(({ context, event, enqueue }) => {
            const id = event.type.slice('xstate.done.actor.'.length)
            enqueue.stopChild(id)
            enqueue.assign({ shards: context.shards.filter((s) => s !== id) })
          }),
        },
      },
    },
    closed: { type: 'final' },
  },
})
