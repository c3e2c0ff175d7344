/**
 * The demo's live display. In a terminal: a progress bar and, under it, a table redrawn in place (both drawn by
 * cli-progress, the table's lines as bar lines with their own format), with log lines printed above them. Elsewhere
 * (a pipe, a file, CI): plain lines, a progress line every 10 % or 5 s, and the table at the end of each phase.
 */
import cliProgress from 'cli-progress'
import { duration, num } from './format.js'
import type { Io } from './io.js'

export interface LiveDisplay {
  /** Starts a phase with a bar from 0 to `total` `unit`s. */
  phase(name: string, total: number, unit: string): void
  /** The bar's value, and the text shown after it. */
  update(value: number, extra: string): void
  /** The table under the bar (several lines). */
  table(text: string): void
  /** A line printed above the display. */
  log(line: string): void
  /** Ends the phase (its last state stays on screen). */
  endPhase(): void
  /** Stops drawing; the display stays as it was. */
  stop(): void
}

/** The display for `io`: redrawn in a terminal unless `plain`, plain lines otherwise. */
export const liveDisplay = (io: Io, plain: boolean, stream: NodeJS.WriteStream = process.stdout): LiveDisplay =>
  io.tty && !plain ? ttyDisplay(stream) : plainDisplay(io)

/** Lines of recent events kept on screen in a terminal. */
const eventLines = 4

const ttyDisplay = (stream: NodeJS.WriteStream): LiveDisplay => {
  // Every line is one of cli-progress's bars, redrawn in place: finished phases and recent events are bars whose
  // format prints a text line. Nothing is printed above the display while it runs (a line printed there scrolls
  // the screen under the redraw), so events are shown in it.
  const multibar = new cliProgress.MultiBar(
    {
      stream,
      hideCursor: true,
      clearOnComplete: false,
      stopOnComplete: false,
      autopadding: true,
      fps: 8,
      barsize: 32,
      format: ' {phase} {bar} {percentage}% | {value}/{total} {unit} | {rate} | {extra}',
      formatValue: (v, options, type) => (type === 'value' || type === 'total' ? num(Number(v)) : cliProgress.Format.ValueFormat(v, options, type)),
    },
    cliProgress.Presets.shades_classic,
  )
  const textLine = () => multibar.create(1, 0, { line: '' }, { format: (_options, _params, payload: { line: string }) => payload.line })
  const history = [textLine(), textLine()]
  const bar = multibar.create(1, 0, { phase: 'starting', unit: '', rate: '', extra: '' })
  const events = Array.from({ length: eventLines }, textLine)
  const tableLines: cliProgress.SingleBar[] = []
  const done: string[] = []
  const recent: string[] = []
  let started = Date.now()
  let phaseName = ''
  let unit = ''
  let value = 0
  let total = 0
  return {
    phase(name, t, u) {
      phaseName = name
      unit = u
      total = t
      value = 0
      started = Date.now()
      bar.start(t, 0, { phase: name.padEnd(7), unit, rate: '', extra: '' })
    },
    update(v, extra) {
      value = v
      const seconds = (Date.now() - started) / 1000
      bar.update(v, { phase: phaseName.padEnd(7), unit, rate: seconds > 0 ? `${num(v / seconds)}/s` : '', extra })
    },
    table(text) {
      // A frame taller than the terminal cannot be redrawn in place: keep it within the screen.
      const room = Math.max(4, (stream.rows ?? 40) - history.length - 1 - events.length - 2)
      let rows = text.split('\n')
      if (rows.length > room) rows = [...rows.slice(0, room - 1), `  ... ${rows.length - room + 1} more lines (a taller terminal shows them)`]
      while (tableLines.length < rows.length) tableLines.push(textLine())
      tableLines.forEach((line, i) => line.update(0, { line: rows[i] ?? '' }))
    },
    log(line) {
      recent.push(line)
      while (recent.length > events.length) recent.shift()
      events.forEach((e, i) => e.update(0, { line: recent[i] ?? '' }))
    },
    endPhase() {
      const seconds = (Date.now() - started) / 1000
      done.push(` ${phaseName} done: ${num(value)} of ${num(total)} ${unit} in ${duration(seconds * 1000)} (${num(seconds > 0 ? value / seconds : 0)}/s)`)
      history.forEach((h, i) => h.update(0, { line: done[done.length - history.length + i] ?? '' }))
    },
    stop() {
      multibar.stop()
    },
  }
}

const plainDisplay = (io: Io): LiveDisplay => {
  let name = ''
  let unit = ''
  let total = 0
  let started = Date.now()
  let lastPrinted = 0
  let lastStep = -1
  let lastValue = -1
  let value = 0
  let extra = ''
  let latestTable = ''
  const line = () => {
    const seconds = (Date.now() - started) / 1000
    const pct = total > 0 ? Math.floor((value / total) * 100) : 100
    lastValue = value
    io.out(`${name} ${String(pct).padStart(3)}% ${num(value)}/${num(total)} ${unit}, ${seconds > 0 ? num(value / seconds) : 0}/s${extra ? `, ${extra}` : ''}\n`)
    lastPrinted = Date.now()
  }
  return {
    phase(n, t, u) {
      name = n
      total = t
      unit = u
      started = Date.now()
      lastStep = -1
      value = 0
      extra = ''
    },
    update(v, e) {
      value = v
      extra = e
      const step = total > 0 ? Math.floor((v / total) * 10) : 10
      if (step > lastStep || Date.now() - lastPrinted >= 5000) {
        lastStep = step
        line()
      }
    },
    table(text) {
      latestTable = text
    },
    log(l) {
      io.out(`${l}\n`)
    },
    endPhase() {
      if (value !== lastValue) line()
      io.out(`${name} done in ${duration(Date.now() - started)}\n`)
      if (latestTable) io.out(`${latestTable}\n`)
    },
    stop() {},
  }
}
