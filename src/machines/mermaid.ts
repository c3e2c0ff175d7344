/**
 * Mermaid state diagrams generated from the XState machine definitions in `actors/` (never drawn by hand): the
 * README's diagrams (`npm run diagrams`, scripts/diagrams.ts) and `rockvisor machines --format mermaid` both come
 * from here.
 *
 * What a diagram shows: every state node (compound ones nested, parallel regions separated by `--`), `[*] -->` for
 * each initial state, `--> [*]` for each final state, and one edge per targeted transition (one per target), labelled
 * with its event and, when it has a named guard, `[guard]`. Transitions without a target (actions only) are left out.
 * Mermaid ids come from the state's full path (`active_primary_up`); the state's own key is its label. A transition
 * declared on a compound state X whose target lies inside X ("from any state of X") starts at a pseudo-state
 * `(any X state)` drawn inside X, because Mermaid's layout drops edges from a composite to its own substates.
 * Labels: `xstate.done.actor.*`/`xstate.error.actor.*` become `<actor src> done`/`<actor src> error`, delayed
 * transitions `after delay`, eventless ones `always`.
 *
 * The README section lives between `<!-- machines:begin -->` and `<!-- machines:end -->`.
 */
import type { AnyStateMachine, AnyStateNode, AnyTransitionDefinition } from 'xstate'
import { machineCatalog } from './catalog.js'

export const BEGIN_MARKER = '<!-- machines:begin -->'
export const END_MARKER = '<!-- machines:end -->'

/** Words the stateDiagram grammar reserves: never used as a bare state id. */
const RESERVED = new Set([
  'state', 'note', 'end', 'as', 'direction', 'class', 'classdef', 'style', 'click', 'scale', 'hide', 'acctitle',
  'accdescr', 'left', 'right', 'of', 'default', 'root',
])

const INDENT = '    '
const DONE_ACTOR = 'xstate.done.actor.'
const ERROR_ACTOR = 'xstate.error.actor.'
const DONE_STATE = 'xstate.done.state.'
const AFTER = 'xstate.after.'

/** The child state nodes of `node`, in document order. */
export const childrenOf = (node: AnyStateNode): AnyStateNode[] => Object.values(node.states)

/** `node` and all its descendants, depth first, in document order. */
export const walk = (node: AnyStateNode): AnyStateNode[] => [node, ...childrenOf(node).flatMap(walk)]

/** Replaces what Mermaid would misread in a label (quotes, `;`, `#`, `:`, line breaks, markup). */
const labelText = (text: string): string => text.replace(/[^A-Za-z0-9 _.,()*\[\]\/+-]/g, '_')

/** Makes ids valid and unique: `s_` before a reserved word or a leading digit, `_2`, `_3`... after a repeat. */
const idAllocator = (): ((parts: readonly string[]) => string) => {
  const used = new Set<string>()
  return (parts) => {
    let base = parts.map((p) => p.replace(/[^A-Za-z0-9_]/g, '_')).join('_') || 'state'
    if (/^[0-9_]/.test(base) || RESERVED.has(base.toLowerCase())) base = `s_${base}`
    let id = base
    for (let n = 2; used.has(id.toLowerCase()); n++) id = `${base}_${n}`
    used.add(id.toLowerCase())
    return id
  }
}

/** Whether `node` is a proper descendant of `ancestor`. */
export const isDescendant = (node: AnyStateNode, ancestor: AnyStateNode): boolean => {
  for (let n = node.parent; n !== undefined; n = n.parent) if (n === ancestor) return true
  return false
}

/** A readable name for a guard: its type when named (`canGrow`), composed for `and`/`or`/`not`; else undefined. */
const guardName = (guard: unknown): string | undefined => {
  if (typeof guard === 'string') return guard
  if (typeof guard === 'object' && guard !== null && typeof (guard as { type?: unknown }).type === 'string') {
    return (guard as { type: string }).type
  }
  if (typeof guard === 'function') {
    const inner = (guard as { guards?: unknown }).guards
    if (Array.isArray(inner)) {
      const names = inner.map((g) => guardName(g) ?? 'inline')
      if (guard.name === 'not' && names.length === 1) return `not ${names[0]}`
      if (guard.name === 'and' || guard.name === 'or') return `(${names.join(` ${guard.name} `)})`
    }
    if ((guard as { check?: unknown }).check !== undefined && guard.name) return guard.name
  }
  return undefined
}

/** A readable name for an actor that `source` invoked (its `src`), or the actor id for a spawned child. */
const actorName = (source: AnyStateNode, actorId: string): string => {
  if (actorId === '*') return 'any actor'
  const invoked = source.invoke.find((inv) => inv.id === actorId)
  if (invoked === undefined) return actorId
  if (typeof invoked.src === 'string' && !invoked.src.startsWith('xstate.invoke.')) return invoked.src
  return /^\d+\./.test(actorId) ? 'invoked actor' : actorId
}

/** A readable name for the event of `transition` (without its guard). */
export const eventLabel = (transition: AnyTransitionDefinition): string => {
  const event = String(transition.eventType)
  const source = transition.source
  if (event === '') return 'always'
  if (event === '*') return 'any event'
  if (event.startsWith(DONE_ACTOR)) return `${actorName(source, event.slice(DONE_ACTOR.length))} done`
  if (event.startsWith(ERROR_ACTOR)) return `${actorName(source, event.slice(ERROR_ACTOR.length))} error`
  if (event.startsWith(DONE_STATE)) return `${source.key} done`
  if (event.startsWith(AFTER)) return 'after delay'
  return event
}

/** The full label of an edge for `transition`: the event and, when it has a named guard, `[guard]`. */
export const transitionLabel = (transition: AnyTransitionDefinition): string => {
  const guard = transition.guard === undefined ? undefined : (guardName(transition.guard) ?? 'inline guard')
  return labelText(guard === undefined ? eventLabel(transition) : `${eventLabel(transition)} [${guard}]`)
}

/** Every transition of `node` (events, invoke onDone/onError, delayed, eventless), in a stable order. */
export const transitionsOf = (node: AnyStateNode): AnyTransitionDefinition[] => [
  ...[...node.transitions.values()].flat(),
  ...(node.always ?? []),
]

/** The deepest node that is a proper ancestor of both `a` and `b`, or undefined for the machine's root. */
export const commonAncestor = (a: AnyStateNode, b: AnyStateNode): AnyStateNode | undefined => {
  const ancestors = new Set<AnyStateNode>()
  for (let n = a.parent; n !== undefined; n = n.parent) ancestors.add(n)
  for (let n = b.parent; n !== undefined; n = n.parent) if (ancestors.has(n)) return n
  return undefined
}

/** Renders one machine as a Mermaid `stateDiagram-v2`. */
export const mermaidOf = (machine: AnyStateMachine): string => {
  const root = machine.root
  const allocate = idAllocator()
  const ids = new Map<AnyStateNode, string>()
  for (const node of walk(root)) ids.set(node, allocate(node.path.length > 0 ? node.path : [machine.id || 'machine']))
  const idOf = (node: AnyStateNode): string => ids.get(node)!
  // The root itself is drawn only when something needs it: parallel regions at top level, or its own transitions.
  const drawRoot = root.type === 'parallel' || transitionsOf(root).some((t) => t.target !== undefined)

  // Mermaid cannot draw an edge from a composite state to a state inside it (the layout drops the line), so such a
  // transition ("from any state of X, go to X.y") starts at a pseudo-state `(any X state)` drawn inside X, with id
  // `<id of X>__any`. Parallel states keep the plain edge: a pseudo-state inside one would open a region.
  const anyIds = new Map<AnyStateNode, string>()
  const anyIdOf = (node: AnyStateNode): string => {
    let id = anyIds.get(node)
    if (id === undefined) anyIds.set(node, (id = allocate([`${idOf(node)}__any`])))
    return id
  }

  // Each edge is written in the block of the deepest state that contains both its ends (a parallel state's block
  // would split it into a region, so such an edge goes one level up). `undefined`: the top level.
  const edges = new Map<AnyStateNode | undefined, string[]>()
  let omitted = 0
  for (const node of walk(root)) {
    for (const t of transitionsOf(node)) {
      if (t.target === undefined || t.target.length === 0) {
        omitted++
        continue
      }
      for (const target of t.target) {
        const fromAny = node.type === 'compound' && isDescendant(target, node)
        let scope = fromAny ? node : commonAncestor(node, target)
        while (scope !== undefined && scope.type === 'parallel') scope = scope.parent
        if (scope === root && !drawRoot) scope = undefined
        if (scope === root && root.type === 'parallel') scope = undefined
        const line = `${fromAny ? anyIdOf(node) : idOf(node)} --> ${idOf(target)} : ${transitionLabel(t)}`
        edges.set(scope, [...(edges.get(scope) ?? []), line])
      }
    }
  }

  const lines: string[] = ['stateDiagram-v2']
  lines.push(`${INDENT}%% Generated from the XState machine "${labelText(machine.id)}" by scripts/diagrams.ts: do not edit by hand.`)
  if (omitted > 0) {
    lines.push(`${INDENT}%% ${omitted} transition${omitted === 1 ? '' : 's'} without a target (actions only) omitted.`)
  }

  /** The lines inside the block of `node` (its children, their initial/final markers and its edges). */
  const body = (node: AnyStateNode, depth: number): string[] => {
    const pad = INDENT.repeat(depth)
    const out: string[] = []
    const children = childrenOf(node)
    if (node.type === 'parallel') {
      children.forEach((child, i) => {
        if (i > 0) out.push(`${pad}--`)
        out.push(...declare(child, depth))
      })
      return out
    }
    const initial = node.initial?.target ?? []
    for (const target of initial) out.push(`${pad}[*] --> ${idOf(target)}`)
    for (const child of children) out.push(...declare(child, depth))
    const any = anyIds.get(node)
    if (any !== undefined) out.push(`${pad}state "${labelText(`(any ${node.key || machine.id} state)`)}" as ${any}`)
    for (const child of children) if (child.type === 'final') out.push(`${pad}${idOf(child)} --> [*]`)
    for (const line of edges.get(node) ?? []) out.push(`${pad}${line}`)
    return out
  }

  /** The declaration of `node`: a labelled state, with a block when it has children. */
  const declare = (node: AnyStateNode, depth: number): string[] => {
    const pad = INDENT.repeat(depth)
    const label = labelText(node.type === 'history' ? `${node.key} (history)` : node.key || machine.id)
    const head = `${pad}state "${label}" as ${idOf(node)}`
    if (childrenOf(node).length === 0) return [head]
    return [`${head} {`, ...body(node, depth + 1), `${pad}}`]
  }

  if (drawRoot) {
    lines.push(`${INDENT}[*] --> ${idOf(root)}`)
    lines.push(...declare(root, 1))
  } else {
    lines.push(...body(root, 1))
  }
  for (const line of edges.get(undefined) ?? []) lines.push(`${INDENT}${line}`)
  return lines.join('\n')
}

/** The markdown section for README.md: one heading and one Mermaid block per machine. */
export const machinesMarkdown = (): string =>
  [
    '<!-- Generated from actors/*.ts by scripts/diagrams.ts (npm run diagrams): do not edit by hand. -->',
    ...machineCatalog.map(({ title, machine }) => `### ${title}\n\n\`\`\`mermaid\n${mermaidOf(machine)}\n\`\`\``),
  ].join('\n\n')

/** The text between the markers in `text`, or undefined when they are missing, repeated or out of order. */
export const extractSection = (text: string): string | undefined => {
  const begin = text.indexOf(BEGIN_MARKER)
  const end = text.indexOf(END_MARKER)
  if (begin < 0 || end < begin + BEGIN_MARKER.length) return undefined
  if (text.indexOf(BEGIN_MARKER, begin + 1) >= 0 || text.indexOf(END_MARKER, end + 1) >= 0) return undefined
  return text.slice(begin + BEGIN_MARKER.length, end)
}

/** Whether the section between the markers of `text` is `markdown` (surrounding blank lines aside). */
export const sectionIsCurrent = (text: string, markdown: string = machinesMarkdown()): boolean => {
  const section = extractSection(text)
  return section !== undefined && section.replace(/\r\n/g, '\n').trim() === markdown.trim()
}

/** `text` with the section between its markers replaced by `markdown`; throws if the markers are not usable. */
export const replaceSection = (text: string, markdown: string = machinesMarkdown()): string => {
  if (extractSection(text) === undefined) {
    throw new Error(`expected exactly one ${BEGIN_MARKER} followed by exactly one ${END_MARKER}`)
  }
  const begin = text.indexOf(BEGIN_MARKER) + BEGIN_MARKER.length
  const end = text.indexOf(END_MARKER)
  return `${text.slice(0, begin)}\n${markdown.trim()}\n${text.slice(end)}`
}
