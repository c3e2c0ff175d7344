/** What a command writes to and reads from (the process's streams, or a test's). */
export interface Io {
  readonly out: (text: string) => void
  readonly err: (text: string) => void
  /** Whether stdout is a terminal (boxed tables, colours, a redrawn progress display) or a pipe/file (plain text). */
  readonly tty: boolean
  /** Terminal width, when it is one. */
  readonly columns: number
  readonly stdin: NodeJS.ReadableStream
  /**
   * Resolves when the user asks to stop (Ctrl-C, SIGTERM): the command winds down and exits 130. The process's own
   * (`processIo`) ends the process at a second Ctrl-C.
   */
  readonly interrupted: () => Promise<void>
}

/** A mistake on the command line: printed on one line with the command's usage, exit code 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError'
}

/** The process's own streams. */
export const processIo = (): Io => ({
  out: (text) => void process.stdout.write(text),
  err: (text) => void process.stderr.write(text),
  tty: process.stdout.isTTY === true,
  columns: process.stdout.columns ?? 100,
  stdin: process.stdin,
  interrupted: () =>
    new Promise<void>((resolve) => {
      const stop = () => {
        process.off('SIGINT', stop)
        process.off('SIGTERM', stop)
        // A second Ctrl-C while the command winds down (closing the index) ends the process at once, exit code 130,
        // with the terminal's cursor shown again (a live display hides it).
        process.once('SIGINT', () => {
          if (process.stdout.isTTY === true) process.stdout.write('\x1b[?25h\n')
          process.exit(130)
        })
        resolve()
      }
      process.on('SIGINT', stop)
      process.on('SIGTERM', stop)
    }),
})
