/**
 * Transition coverage of the machines in actors/. Tests hand `recordInspection` to `openIndex({ inspect })` or
 * `createActor(..., { inspect })` (the harness does it for every index it opens); each microstep's transitions are
 * recorded under the name of the test that was running, and written (one file per test file) under
 * `.coverage/transitions/` when the file's tests end (see test/support/setup.ts). `scripts/transition-coverage.ts`
 * then fails the run if any transition of any machine was never taken.
 *
 * Only the example tests under `test/` count: the check must give the same answer on every run, so it may only
 * count transitions that some test takes deterministically. The property tests run on random seeds (a transition
 * one of their runs takes, the next run may not), so they do not record.
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { join, relative, sep } from 'node:path'
import type { AnyStateMachine, AnyStateNode, AnyTransitionDefinition, InspectionEvent } from 'xstate'
import { primaryMachine, readerMachine, rootSupervisorMachine, shardSupervisorMachine } from '../../actors/index.js'

/** Every machine of actors/. */
export const allMachines: readonly AnyStateMachine[] = [rootSupervisorMachine, shardSupervisorMachine, primaryMachine, readerMachine]

/** Where the recorded transitions go. */
export const coverageDir = join(process.cwd(), '.coverage', 'transitions')

/** What one test file recorded: the transitions each of its tests took. */
export interface CoverageFile {
  readonly file: string
  readonly tests: Readonly<Record<string, readonly string[]>>
}

/** Whether the transitions of the test file at `testPath` count toward the check (the example tests under test/). */
export const countsTowardCoverage = (testPath: string): boolean => relative(process.cwd(), testPath).split(sep)[0] === 'test'

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

/** Transitions taken, by the name of the test running when they were taken. */
const taken = new Map<string, Set<string>>()
/** Names the test running now; undefined until the test file's recording starts (then nothing is recorded). */
let currentTest: (() => string) | undefined

/** Starts recording in this test file, naming each transition's test with `name` (called by test/support/setup.ts). */
export const startRecording = (name: () => string): void => {
  currentTest = name
}

/** An `inspect` callback that records the transitions of every microstep. */
export const recordInspection = (event: InspectionEvent): void => {
  if (event.type !== '@xstate.microstep' || currentTest === undefined) return
  const transitions = (event as { _transitions?: AnyTransitionDefinition[] })._transitions ?? []
  if (transitions.length === 0) return
  const test = currentTest()
  let set = taken.get(test)
  if (set === undefined) taken.set(test, (set = new Set()))
  for (const t of transitions) set.add(transitionKey(t))
}

/** Writes what the test file at `testPath` took. */
export const flushCoverage = (testPath: string): void => {
  if (taken.size === 0) return
  mkdirSync(coverageDir, { recursive: true })
  const file = relative(process.cwd(), testPath)
  const out: CoverageFile = { file, tests: Object.fromEntries([...taken].map(([test, set]) => [test, [...set].sort()])) }
  writeFileSync(join(coverageDir, `${file.replace(/[^a-z0-9]+/gi, '_')}-${process.pid}.json`), JSON.stringify(out, null, 1))
}
