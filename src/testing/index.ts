/**
 * `rockvisor/testing`: the fast-check kit rockvisor tests itself with, for your own suites.
 *
 * - `arbitraries`: valid (and deliberately invalid) inputs: metas, batches, topics, partitions, time ranges, read
 *   options, tokens; and small colliding domains for model-based runs.
 * - `model`: the in-memory reference model of the index and its freshness contract (which states a read may observe).
 * - `commands`: fast-check commands that drive a live index (writes, retention, reads, crashes, faults, clock
 *   advances, recovery, reopening) and check every answer against the model; `indexModelProperty` is the whole run.
 * - `withTempIndex`: a real index in a fresh temporary directory, with a `FaultInjector` and a `ManualClock`, always
 *   closed and removed afterwards.
 * - `FaultInjector`, `ManualClock`: the fault-injecting engine and the clock that moves only when told to.
 *
 * Needs `fast-check` (^4, an optional peer dependency of rockvisor: install it beside rockvisor). Nothing here is
 * loaded by `rockvisor` itself.
 */
export * as arbitraries from './arbitraries.js'
export * as model from './model.js'
export * as commands from './commands.js'
export { withTempIndex, type TempIndex, type TempIndexOptions } from './temp-index.js'
export { released, scheduledEngine } from './scheduled.js'
export { FaultInjector, type FaultOp, type FaultTarget, type FaultKind } from '../faults.js'
export { ManualClock, type Clock } from '../clock.js'
