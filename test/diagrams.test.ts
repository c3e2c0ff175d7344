import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import type { AnyStateMachine, AnyStateNode } from 'xstate'
import { describe, expect, it } from 'vitest'
import { primaryMachine, readerMachine, rootSupervisorMachine, shardSupervisorMachine } from '../actors/index.js'
import { BEGIN_MARKER, END_MARKER, extractSection, machines, machinesMarkdown, mermaidOf, replaceSection, sectionIsCurrent } from '../scripts/diagrams.js'

// The walk below is written here on purpose, not imported from the script: the tests check the script against an
// independent reading of the machines.

/** Every state node below the root, depth first. */
const statesOf = (node: AnyStateNode): AnyStateNode[] =>
  Object.values(node.states).flatMap((child) => [child, ...statesOf(child)])

/** The Mermaid id the diagrams use for a state: its path joined by `_` (all keys here are plain identifiers). */
const idOf = (node: AnyStateNode): string => node.path.join('_')

/** Whether `node` lies strictly inside `ancestor`. */
const isInside = (node: AnyStateNode, ancestor: AnyStateNode): boolean =>
  node.parent !== undefined && (node.parent === ancestor || isInside(node.parent, ancestor))

/**
 * Where an edge for a transition from `source` to `target` starts: the source's id, or, for a transition from a
 * compound state to a state inside it (which Mermaid cannot draw from the composite's border), the pseudo-state
 * `<source id>__any` drawn inside it.
 */
const edgeStart = (source: AnyStateNode, target: AnyStateNode): string =>
  source.type === 'compound' && isInside(target, source) ? `${idOf(source)}__any` : idOf(source)

/** Every (source, target, event) triple of a targeted transition: events, invoke onDone/onError, delays, `always`. */
const targetedTransitions = (machine: AnyStateMachine) =>
  [machine.root, ...statesOf(machine.root)].flatMap((node) =>
    [...[...node.transitions.values()].flat(), ...(node.always ?? [])].flatMap((t) =>
      (t.target ?? []).map((target) => ({ source: node, target, event: String(t.eventType), guard: t.guard })),
    ),
  )

/** What an edge's label must say about its event. */
const expectedEventText = (event: string): RegExp => {
  if (event === '') return /^always\b/
  if (event.startsWith('xstate.done.actor.')) return /\bdone\b/
  if (event.startsWith('xstate.error.actor.')) return /\berror\b/
  if (event.startsWith('xstate.after.')) return /^after delay\b/
  return new RegExp(`^${event.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\b`)
}

const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')

const all = [
  { name: 'root supervisor', machine: rootSupervisorMachine },
  { name: 'shard supervisor', machine: shardSupervisorMachine },
  { name: 'primary', machine: primaryMachine },
  { name: 'reader', machine: readerMachine },
]

describe('machine diagrams', () => {
  it('draws all four machines, in order', () => {
    expect(machines.map((m) => m.machine)).toEqual(all.map((m) => m.machine))
    const md = machinesMarkdown()
    expect(md.match(/^### .+$/gm)).toEqual(['### Root supervisor', '### Shard supervisor', '### Primary', '### Reader'])
    expect(md.match(/^```mermaid$/gm)).toHaveLength(4)
    for (const { machine } of all) expect(md).toContain(`\`\`\`mermaid\n${mermaidOf(machine)}\n\`\`\``)
  })

  describe.each(all)('$name', ({ machine }) => {
    const diagram = mermaidOf(machine)
    const lines = diagram.split('\n').map((l) => l.trim())

    it('is a stateDiagram-v2 with balanced blocks', () => {
      expect(lines[0]).toBe('stateDiagram-v2')
      expect(lines.filter((l) => l.endsWith('{'))).toHaveLength(lines.filter((l) => l === '}').length)
    })

    it('(a) declares every state once, labelled with its key, nested under its parent', () => {
      const states = statesOf(machine.root)
      expect(states.length).toBeGreaterThan(0)
      for (const node of states) {
        const declared = lines.filter((l) => new RegExp(`^state "${escape(node.key)}" as ${escape(idOf(node))}( \\{)?$`).test(l))
        expect(declared, `state ${node.id}`).toHaveLength(1)
      }
      // No state is declared that the machine does not have, except the `(any X state)` pseudo-states.
      const pseudo = lines.filter((l) => /^state "\(any .+ state\)" as \S+__any$/.test(l))
      expect(lines.filter((l) => l.startsWith('state ')).length).toBe(states.length + pseudo.length)
      for (const l of pseudo) {
        const id = l.slice(l.lastIndexOf(' ') + 1)
        const owner = states.find((n) => `${idOf(n)}__any` === id)
        expect(owner, `owner of ${id}`).toBeDefined()
        expect(l).toBe(`state "(any ${owner!.key} state)" as ${id}`)
      }
      // Nesting: each child's declaration sits inside its parent's block.
      for (const node of states.filter((n) => Object.keys(n.states).length > 0)) {
        const open = lines.findIndex((l) => l.endsWith(` as ${idOf(node)} {`))
        expect(open, `block of ${node.id}`).toBeGreaterThanOrEqual(0)
        let depth = 0
        let close = open
        for (let i = open; i < lines.length; i++) {
          if (lines[i]!.endsWith('{')) depth++
          if (lines[i] === '}') depth--
          if (depth === 0) {
            close = i
            break
          }
        }
        const inside = [...Object.values(node.states).map(idOf), ...(lines.includes(`state "(any ${node.key} state)" as ${idOf(node)}__any`) ? [`${idOf(node)}__any`] : [])]
        for (const child of inside) {
          const at = lines.findIndex((l) => new RegExp(` as ${escape(child)}( \\{)?$`).test(l))
          expect(at, `${child} inside ${node.id}`).toBeGreaterThan(open)
          expect(at, `${child} inside ${node.id}`).toBeLessThan(close)
        }
      }
    })

    it('marks initial and final states, and separates parallel regions', () => {
      for (const node of [machine.root, ...statesOf(machine.root)]) {
        if (node.type === 'compound') expect(lines, `initial of ${node.id}`).toContain(`[*] --> ${idOf(node.initial.target[0]!)}`)
        if (node.type === 'final') expect(lines, `final ${node.id}`).toContain(`${idOf(node)} --> [*]`)
      }
      const regions = statesOf(machine.root)
        .filter((n) => n.type === 'parallel')
        .reduce((sum, n) => sum + Object.keys(n.states).length - 1, 0)
      expect(lines.filter((l) => l === '--')).toHaveLength(regions)
    })

    it('(b) draws every targeted transition as one labelled edge, and nothing else', () => {
      const transitions = targetedTransitions(machine)
      expect(transitions.length).toBeGreaterThan(0)
      const edges = lines.filter((l) => / --> /.test(l) && !l.includes('[*]'))
      const unmatched = [...edges]
      for (const { source, target, event, guard } of transitions) {
        const prefix = `${edgeStart(source, target)} --> ${idOf(target)} : `
        const at = unmatched.findIndex((l) => {
          if (!l.startsWith(prefix)) return false
          const label = l.slice(prefix.length)
          if (!expectedEventText(event).test(label)) return false
          const name = typeof guard === 'string' ? guard : (guard as { type?: string } | undefined)?.type
          return name !== undefined ? label.endsWith(` [${name}]`) : guard === undefined ? !label.includes('[') : true
        })
        expect(at, `edge for ${event || 'always'} from ${source.id} to ${target.id}`).toBeGreaterThanOrEqual(0)
        unmatched.splice(at, 1)
      }
      expect(unmatched, 'edges with no transition').toEqual([])
    })

    it('omits targetless transitions and says so', () => {
      const targetless = [machine.root, ...statesOf(machine.root)].flatMap((node) =>
        [...[...node.transitions.values()].flat(), ...(node.always ?? [])].filter((t) => t.target === undefined),
      )
      if (targetless.length === 0) expect(diagram).not.toMatch(/omitted/)
      else expect(diagram).toMatch(new RegExp(`%% ${targetless.length} transitions? without a target \\(actions only\\) omitted`))
    })

    it('(c) is deterministic', () => {
      expect(mermaidOf(machine)).toBe(diagram)
      expect(machinesMarkdown()).toBe(machinesMarkdown())
    })

    it('uses only ids Mermaid accepts', () => {
      for (const l of lines) {
        const m = /^state "([^"]*)" as (\S+)( \{)?$/.exec(l)
        if (m) expect(m[2]).toMatch(/^[A-Za-z][A-Za-z0-9_]*$/)
      }
    })
  })

  it('names invoked actors and delays readably', () => {
    const primary = mermaidOf(primaryMachine)
    expect(primary).toContain('opening --> ready : openPrimary done')
    expect(primary).toContain('opening --> crashed : openPrimary error')
    expect(primary).toContain('waiting --> opening : after delay')
    expect(primary).toContain('waiting --> opening : always [noDelay]')
    expect(primary).not.toMatch(/xstate\./)
    const shard = mermaidOf(shardSupervisorMachine)
    expect(shard).toContain('closing_primary --> closed : always [noPrimary]')
    expect(shard).toContain('active_primary__any --> active_primary_up : PRIMARY.READY')
  })

  it('replaces only the section between the markers', () => {
    const md = machinesMarkdown()
    const doc = `# Title\n\nintro\n\n${BEGIN_MARKER}\nold\n${END_MARKER}\n\nafter\n`
    expect(sectionIsCurrent(doc, md)).toBe(false)
    const written = replaceSection(doc, md)
    expect(written.startsWith(`# Title\n\nintro\n\n${BEGIN_MARKER}\n`)).toBe(true)
    expect(written.endsWith(`\n${END_MARKER}\n\nafter\n`)).toBe(true)
    expect(sectionIsCurrent(written, md)).toBe(true)
    expect(replaceSection(written, md)).toBe(written)
    expect(extractSection('no markers')).toBeUndefined()
    expect(extractSection(`${END_MARKER}\n${BEGIN_MARKER}`)).toBeUndefined()
    expect(() => replaceSection('no markers', md)).toThrow(/machines:begin/)
  })

  it('(d) README.md shows the current diagrams', () => {
    const readme = readFileSync(fileURLToPath(new URL('../README.md', import.meta.url)), 'utf8')
    if (!sectionIsCurrent(readme, machinesMarkdown())) {
      throw new Error('README.md machine diagrams are stale: run npm run diagrams')
    }
  })
})
