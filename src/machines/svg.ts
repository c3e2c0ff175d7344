/**
 * A statechart of a machine as SVG, laid out here (no browser library): each compound or parallel state is a box
 * whose children are laid out by dagre (a layered graph layout), one level at a time, inside out. A transition is
 * drawn at the level of the deepest state containing both its ends, between the children of that state holding
 * them (so an edge may end at the border of a box holding its target); a transition from a compound state to one of
 * its own descendants starts at an `any <state> state` marker inside it, as in the Mermaid diagrams. Labels are
 * those of the Mermaid diagrams (src/machines/mermaid.ts).
 *
 * Every state is a `<g class="state" data-state="a.b.c">` (its path of keys), so a page can highlight the states an
 * actor is in; every edge is a `<g class="transition" data-from data-to data-event>`. Sizes come from a fixed-width
 * font, 12 px (about 7.3 px a character).
 */
import dagre, { type Edge } from '@dagrejs/dagre'
import type { AnyStateMachine, AnyStateNode } from 'xstate'
import { childrenOf, commonAncestor, isDescendant, transitionLabel, transitionsOf } from './mermaid.js'

const CHAR = 7.3
const LEAF_HEIGHT = 30
const TITLE = 22
const PAD = 10
const COUNT_ROOM = 24

interface Point {
  readonly x: number
  readonly y: number
}

/** What is laid out in one level: a state, the initial-state dot, or the "any state" marker. */
type Item =
  | { readonly kind: 'state'; readonly node: AnyStateNode; readonly laid: Laid }
  | { readonly kind: 'initial' }
  | { readonly kind: 'any'; readonly label: string }

/** One box's content, laid out: the items at their top-left corners, and the edges between them. */
interface Laid {
  readonly width: number
  readonly height: number
  readonly items: ReadonlyArray<{ readonly id: string; readonly item: Item; readonly x: number; readonly y: number; readonly width: number; readonly height: number }>
  readonly edges: ReadonlyArray<{ readonly points: readonly Point[]; readonly label: string; readonly at: Point; readonly from: string; readonly to: string; readonly event: string }>
}

const textWidth = (text: string): number => Math.ceil(text.length * CHAR)

const escapeXml = (text: string): string => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)

/** The id of a state in the SVG: its path of keys joined by dots (`` for the machine's root). */
export const statePath = (node: AnyStateNode): string => node.path.join('.')

/** The child of `scope` that holds `node` (or is it). */
const childHolding = (scope: AnyStateNode, node: AnyStateNode): AnyStateNode => {
  let n = node
  while (n.parent !== undefined && n.parent !== scope) n = n.parent
  return n
}

/** Lays out the content of `node` (its children and the transitions between them), recursively. */
const layoutContent = (node: AnyStateNode, machine: AnyStateMachine): Laid => {
  const g = new dagre.graphlib.Graph({ multigraph: true, compound: false })
  g.setGraph({ rankdir: 'TB', nodesep: 26, ranksep: 34, edgesep: 12, marginx: 4, marginy: 4 })
  g.setDefaultEdgeLabel(() => ({}))
  const items = new Map<string, Item>()
  const add = (id: string, item: Item, width: number, height: number) => {
    items.set(id, item)
    g.setNode(id, { width, height })
  }

  for (const child of childrenOf(node)) {
    const laid = childrenOf(child).length === 0 ? undefined : layoutContent(child, machine)
    const label = child.type === 'history' ? `${child.key} (history)` : child.key
    const width = laid === undefined ? Math.max(70, textWidth(label) + 28 + COUNT_ROOM) : Math.max(laid.width + 2 * PAD, textWidth(label) + 28 + COUNT_ROOM)
    const height = laid === undefined ? LEAF_HEIGHT : laid.height + TITLE + 2 * PAD
    add(statePath(child), { kind: 'state', node: child, laid: laid ?? { width: 0, height: 0, items: [], edges: [] } }, width, height)
  }
  const initial = node.type === 'compound' ? (node.initial?.target ?? []) : []
  if (initial.length > 0) {
    add('(initial)', { kind: 'initial' }, 12, 12)
    for (const target of initial) g.setEdge('(initial)', statePath(childHolding(node, target)), { width: 0, height: 0 }, `initial ${statePath(target)}`)
  }

  // The transitions drawn at this level: between two children of `node` (lifted from deeper states), or from `node`
  // itself into one of its descendants (drawn from the "any state" marker).
  const anyId = '(any)'
  let n = 0
  const scopeOf = (source: AnyStateNode, target: AnyStateNode): AnyStateNode | undefined =>
    source.type === 'compound' && isDescendant(target, source) ? source : (commonAncestor(source, target) ?? machine.root)
  const walkAll = (s: AnyStateNode): AnyStateNode[] => [s, ...childrenOf(s).flatMap(walkAll)]
  for (const source of walkAll(node)) {
    for (const t of transitionsOf(source)) {
      for (const target of t.target ?? []) {
        if (scopeOf(source, target) !== node) continue
        const fromAny = source === node
        if (fromAny && !items.has(anyId)) add(anyId, { kind: 'any', label: `any ${node.key || machine.id} state` }, textWidth(`any ${node.key || machine.id} state`) + 20, 22)
        const from = fromAny ? anyId : statePath(childHolding(node, source))
        const to = statePath(childHolding(node, target))
        const label = transitionLabel(t)
        g.setEdge(from, to, { label, width: textWidth(label) + 6, height: 16, labelpos: 'c', from: statePath(source), to: statePath(target), event: String(t.eventType) }, `e${n++}`)
      }
    }
  }

  dagre.layout(g)
  const graph = g.graph() as { width?: number; height?: number }
  const laidItems = g.nodes().map((id: string) => {
    const v = g.node(id) as { x: number; y: number; width: number; height: number }
    return { id, item: items.get(id)!, x: v.x - v.width / 2, y: v.y - v.height / 2, width: v.width, height: v.height }
  })
  const edges = g.edges().flatMap((e: Edge) => {
    const label = g.edge(e) as { points?: Point[]; label?: string; x?: number; y?: number; from?: string; to?: string; event?: string }
    const points = label.points ?? []
    if (label.label === undefined) {
      return [{ points, label: '', at: { x: 0, y: 0 }, from: '', to: '', event: '' }]
    }
    return [{ points, label: label.label, at: { x: label.x ?? 0, y: label.y ?? 0 }, from: label.from ?? '', to: label.to ?? '', event: label.event ?? '' }]
  })
  return { width: Math.max(graph.width ?? 0, 40), height: Math.max(graph.height ?? 0, 20), items: laidItems, edges }
}

/** A smooth path through the points dagre routed (quadratic curves through the midpoints). */
const pathOf = (points: readonly Point[]): string => {
  if (points.length === 0) return ''
  const f = (p: Point) => `${p.x.toFixed(1)},${p.y.toFixed(1)}`
  if (points.length < 3) return `M${points.map(f).join(' L')}`
  let d = `M${f(points[0]!)}`
  for (let i = 1; i < points.length - 1; i++) {
    const p = points[i]!
    const q = points[i + 1]!
    const mid = i === points.length - 2 ? q : { x: (p.x + q.x) / 2, y: (p.y + q.y) / 2 }
    d += ` Q${f(p)} ${f(mid)}`
  }
  return d
}

/** The SVG elements of a laid-out level, offset by (dx, dy). */
const drawLevel = (laid: Laid, dx: number, dy: number, out: string[]): void => {
  for (const { item, x, y, width, height } of laid.items) {
    const ax = dx + x
    const ay = dy + y
    if (item.kind === 'initial') {
      out.push(`<circle class="initial" cx="${(ax + width / 2).toFixed(1)}" cy="${(ay + height / 2).toFixed(1)}" r="5"/>`)
      continue
    }
    if (item.kind === 'any') {
      out.push(`<g class="any"><rect x="${ax.toFixed(1)}" y="${ay.toFixed(1)}" width="${width.toFixed(1)}" height="${height}" rx="11"/>`)
      out.push(`<text x="${(ax + width / 2).toFixed(1)}" y="${(ay + height / 2 + 4).toFixed(1)}" text-anchor="middle">${escapeXml(item.label)}</text></g>`)
      continue
    }
    const { node } = item
    const path = statePath(node)
    const label = node.type === 'history' ? `${node.key} (history)` : node.key
    const kind = childrenOf(node).length > 0 ? (node.type === 'parallel' ? 'parallel' : 'compound') : node.type === 'final' ? 'final' : 'atomic'
    const parentParallel = node.parent?.type === 'parallel'
    out.push(`<g class="state ${kind}${parentParallel ? ' region' : ''}" data-state="${escapeXml(path)}">`)
    out.push(`<rect x="${ax.toFixed(1)}" y="${ay.toFixed(1)}" width="${width.toFixed(1)}" height="${height.toFixed(1)}" rx="${kind === 'atomic' || kind === 'final' ? 8 : 10}"/>`)
    if (kind === 'final') out.push(`<rect class="inner" x="${(ax + 3).toFixed(1)}" y="${(ay + 3).toFixed(1)}" width="${(width - 6).toFixed(1)}" height="${(height - 6).toFixed(1)}" rx="6"/>`)
    if (kind === 'atomic' || kind === 'final') {
      out.push(`<text class="name" x="${(ax + 12).toFixed(1)}" y="${(ay + height / 2 + 4).toFixed(1)}">${escapeXml(label)}</text>`)
      out.push(`<text class="count" data-count-for="${escapeXml(path)}" x="${(ax + width - 8).toFixed(1)}" y="${(ay + height / 2 + 4).toFixed(1)}" text-anchor="end"></text>`)
    } else {
      out.push(`<text class="name title" x="${(ax + 10).toFixed(1)}" y="${(ay + 15).toFixed(1)}">${escapeXml(label)}${kind === 'parallel' ? ' (parallel)' : ''}</text>`)
      out.push(`<text class="count" data-count-for="${escapeXml(path)}" x="${(ax + width - 8).toFixed(1)}" y="${(ay + 15).toFixed(1)}" text-anchor="end"></text>`)
    }
    out.push('</g>')
    drawLevel(item.laid, ax + PAD, ay + TITLE + PAD, out)
  }
  for (const edge of laid.edges) {
    if (edge.label === '') {
      out.push(`<path class="edge initial-edge" d="${pathOf(edge.points.map((p) => ({ x: p.x + dx, y: p.y + dy })))}" marker-end="url(#arrow)"/>`)
      continue
    }
    const d = pathOf(edge.points.map((p) => ({ x: p.x + dx, y: p.y + dy })))
    const w = textWidth(edge.label) + 6
    const lx = edge.at.x + dx
    const ly = edge.at.y + dy
    out.push(`<g class="transition" data-from="${escapeXml(edge.from)}" data-to="${escapeXml(edge.to)}" data-event="${escapeXml(edge.event)}">`)
    out.push(`<path class="edge" d="${d}" marker-end="url(#arrow)"/>`)
    out.push(`<rect class="label-bg" x="${(lx - w / 2).toFixed(1)}" y="${(ly - 8).toFixed(1)}" width="${w.toFixed(1)}" height="16" rx="3"/>`)
    out.push(`<text class="label" x="${lx.toFixed(1)}" y="${(ly + 4).toFixed(1)}" text-anchor="middle">${escapeXml(edge.label)}</text>`)
    out.push('</g>')
  }
}

/**
 * The statechart of `machine` as a standalone SVG document (styled by the page that shows it; a few defaults
 * inline so that it reads on its own too).
 */
export const statechartSvg = (machine: AnyStateMachine): string => {
  const laid = layoutContent(machine.root, machine)
  const margin = 8
  const width = Math.ceil(laid.width + 2 * margin)
  const height = Math.ceil(laid.height + 2 * margin)
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" class="statechart" data-machine="${escapeXml(machine.id)}" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" font-family="ui-monospace, SFMono-Regular, Menlo, Consolas, monospace" font-size="12">`,
    '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="context-stroke"/></marker></defs>',
    '<style>.state rect{fill:#fff;stroke:#8a94a6}.state.compound>rect,.state.parallel>rect{fill:none}.state.region>rect{stroke-dasharray:5 3}.edge{fill:none;stroke:#8a94a6}.label-bg{fill:#fff;opacity:.85}.label{fill:#4a5568;font-size:11px}.initial{fill:#2d3748}.any rect{fill:none;stroke:#a0aec0;stroke-dasharray:3 3}</style>',
  ]
  drawLevel(laid, margin, margin, out)
  out.push('</svg>')
  return out.join('\n')
}
