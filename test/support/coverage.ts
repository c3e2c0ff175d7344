/**
 * Transition coverage of the machines in actors/. Tests hand `recordInspection` to `openIndex({ inspect })` or
 * `createActor(..., { inspect })`; each microstep's transitions are recorded, and written (one file per test file)
 * under `.coverage/transitions/` when the file's tests end (see test/support/setup.ts). `scripts/transition-coverage.ts`
 * then fails the run if any transition of any machine was never taken.
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { AnyStateMachine, AnyStateNode, AnyTransitionDefinition, InspectionEvent } from 'xstate'
import { primaryMachine, readerMachine, rootSupervisorMachine, shardSupervisorMachine } from '../../actors/index.js'

/** Every machine of actors/. */
export const allMachines: readonly AnyStateMachine[] = [rootSupervisorMachine, shardSupervisorMachine, primaryMachine, readerMachine]

/** Where the recorded transitions go. */
export const coverageDir = join(process.cwd(), '.coverage', 'transitions')

const guardName = (t: AnyTransitionDefinition): string => {
  const g = t.guard as unknown
  if (typeof g === 'string') return g
  if (typeof g === 'object' && g !== null && 'type' in g) return String((g as { type: unknown }).type)
  return g === undefined ? '' : 'inline'
}

/** A stable name for a transition: source state, event, targets, guard. */
export const transitionKey = (t: AnyTransitionDefinition): string =>
  `${t.source.id} --${t.eventType}${guardName(t) ? ` [${guardName(t)}]` : ''}--> ${(t.target ?? []).map((n) => n.id).join(',') || '(no target)'}`

const nodesOf = (node: AnyStateNode): AnyStateNode[] => [node, ...Object.values(node.states).flatMap(nodesOf)]

/** Every transition defined by the machines (events, invoke done/error, delayed, eventless). */
export const allTransitions = (): string[] =>
  allMachines.flatMap((m) =>
    nodesOf(m.root).flatMap((node) => [...[...node.transitions.values()].flat(), ...(node.always ?? [])].map(transitionKey)),
  )

const taken = new Set<string>()

/** An `inspect` callback that records the transitions of every microstep. */
export const recordInspection = (event: InspectionEvent): void => {
  if (event.type !== '@xstate.microstep') return
  for (const t of (event as { _transitions?: AnyTransitionDefinition[] })._transitions ?? []) taken.add(transitionKey(t))
}

/** Writes what this test file took. */
export const flushCoverage = (name: string): void => {
  if (taken.size === 0) return
  mkdirSync(coverageDir, { recursive: true })
  writeFileSync(join(coverageDir, `${name.replace(/[^a-z0-9]+/gi, '_')}-${process.pid}.json`), JSON.stringify([...taken].sort(), null, 1))
}
