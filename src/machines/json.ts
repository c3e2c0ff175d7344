/**
 * A machine as JSON for visualizers: `machine.toJSON()` (XState's own definition: ids, keys, types, `on`,
 * `transitions` with `eventType`, `target` ids, `guard`, `invoke`, ...) plus what toJSON leaves out, the eventless
 * (`always`) transitions of each state, in the same shape (`eventType: ""`).
 */
import type { AnyStateMachine, AnyStateNode } from 'xstate'
import { walk } from './mermaid.js'

/** A JSON-safe copy of a value (functions dropped, as JSON.stringify does). */
const plain = (value: unknown): unknown => JSON.parse(JSON.stringify(value ?? null))

/** The JSON definition of a machine: `machine.toJSON()` with each state's `always` transitions added. */
export const machineJson = (machine: AnyStateMachine): Record<string, unknown> => {
  const json = plain(machine.toJSON()) as Record<string, unknown>
  for (const node of walk(machine.root)) {
    const always = node.always ?? []
    if (always.length === 0) continue
    const target = nodeJson(json, node)
    target.always = always.map((t) => plain(t.toJSON()))
  }
  return json
}

/** The JSON object of `node` inside the machine's JSON (found by its path of keys). */
const nodeJson = (json: Record<string, unknown>, node: AnyStateNode): Record<string, unknown> => {
  let at = json
  for (const key of node.path) at = (at.states as Record<string, Record<string, unknown>>)[key]!
  return at
}
