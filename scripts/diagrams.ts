/**
 * Mermaid state diagrams generated from the XState machine definitions in `actors/` (never drawn by hand).
 *
 *     tsx scripts/diagrams.ts                 prints the markdown section (one diagram per machine)
 *     tsx scripts/diagrams.ts --write FILE    replaces the section between the markers in FILE
 *     tsx scripts/diagrams.ts --check FILE    exits 1 if FILE's section differs from what would be generated
 *
 * The section lives between `<!-- machines:begin -->` and `<!-- machines:end -->`.
 *
 * The diagrams are made by src/machines/mermaid.ts, which `rockvisor machines --format mermaid` uses too.
 *
 * What a diagram shows: every state node (compound ones nested, parallel regions separated by `--`), `[*] -->` for
 * each initial state, `--> [*]` for each final state, and one edge per targeted transition (one per target), labelled
 * with its event and, when it has a named guard, `[guard]`. Transitions without a target (actions only) are left out.
 * Mermaid ids come from the state's full path (`active_primary_up`); the state's own key is its label. A transition
 * declared on a compound state X whose target lies inside X ("from any state of X") starts at a pseudo-state
 * `(any X state)` drawn inside X, because Mermaid's layout drops edges from a composite to its own substates.
 * Labels: `xstate.done.actor.*`/`xstate.error.actor.*` become `<actor src> done`/`<actor src> error`, delayed
 * transitions `after delay`, eventless ones `always`.
 */
import { readFileSync, realpathSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import type { AnyStateMachine } from 'xstate'
import { machineCatalog } from '../src/machines/catalog.js'
import { BEGIN_MARKER, END_MARKER, extractSection, machinesMarkdown, replaceSection, sectionIsCurrent } from '../src/machines/mermaid.js'

export {
  BEGIN_MARKER,
  END_MARKER,
  eventLabel,
  extractSection,
  machinesMarkdown,
  mermaidOf,
  replaceSection,
  sectionIsCurrent,
  transitionLabel,
  transitionsOf,
} from '../src/machines/mermaid.js'

/** The machines drawn in README.md, in order, with their headings. */
export const machines: ReadonlyArray<{ readonly name: string; readonly machine: AnyStateMachine }> = machineCatalog.map(({ title, machine }) => ({
  name: title,
  machine,
}))

const USAGE = 'usage: tsx scripts/diagrams.ts [--write FILE | --check FILE]'

/** The command line: prints, writes or checks the section. Returns the exit code. */
export const main = (args: readonly string[]): number => {
  const [flag, file, ...rest] = args
  if (flag === undefined) {
    process.stdout.write(`${machinesMarkdown()}\n`)
    return 0
  }
  if ((flag !== '--write' && flag !== '--check') || file === undefined || rest.length > 0) {
    process.stderr.write(`${USAGE}\n`)
    return 2
  }
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (e) {
    process.stderr.write(`cannot read ${file}: ${e instanceof Error ? e.message : String(e)}\n`)
    return 1
  }
  if (extractSection(text) === undefined) {
    process.stderr.write(
      `${file} has no machine diagram section: it needs exactly one line ${BEGIN_MARKER} and, after it, exactly one ` +
        `line ${END_MARKER}, where the diagrams go\n`,
    )
    return 1
  }
  const markdown = machinesMarkdown()
  if (flag === '--check') {
    if (sectionIsCurrent(text, markdown)) return 0
    process.stderr.write(`${file} machine diagrams are stale: run tsx scripts/diagrams.ts --write ${file}\n`)
    return 1
  }
  if (sectionIsCurrent(text, markdown)) {
    process.stdout.write(`${file}: machine diagrams already up to date\n`)
    return 0
  }
  writeFileSync(file, replaceSection(text, markdown))
  process.stdout.write(`${file}: machine diagrams updated\n`)
  return 0
}

const isEntryPoint = (): boolean => {
  const script = process.argv[1]
  if (script === undefined) return false
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(import.meta.url))
  } catch {
    return false
  }
}

if (isEntryPoint()) process.exitCode = main(process.argv.slice(2))
