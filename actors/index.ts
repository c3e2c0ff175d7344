/**
 * The control plane: pure XState machines. They name the I/O they need and never perform it; `src/runtime.ts`
 * provides it. Draw them with `machine.toJSON()` in any XState visualizer, or read the Mermaid diagrams in README.md.
 */
export { rootSupervisorMachine, type RootEvent } from './root-supervisor.js'
export { shardSupervisorMachine, type ShardPolicy, type ShardInput, type ShardCommand, type ShardContext } from './shard-supervisor.js'
export { primaryMachine, type Lease, type PrimaryInput, type PrimaryOutput, type PrimaryEvent } from './primary.js'
export { readerMachine, type ReaderInput, type ReaderOutput, type ReaderEvent } from './reader.js'
export { addRestart, backoffDelay, shouldRestart, type Backoff, type Intensity, type ChildSpec, type SupervisorEnv, type RestartDecision } from './policy.js'
export type { LifecycleEvent, LifecycleKind } from './events.js'
