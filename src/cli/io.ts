/** What a command writes to and reads from (the process's streams, or a test's). */
export interface Io {
  readonly out: (text: string) => void
  readonly err: (text: string) => void
  /** Whether stdout is a terminal (boxed tables, colours, a redrawn progress display) or a pipe/file (plain text). */
  readonly tty: boolean
  /** Terminal width, when it is one. */
  readonly columns: number
  readonly stdin: NodeJS.ReadableStream
  /** Resolves when the user asks to stop (Ctrl-C, SIGTERM). */
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
        resolve()
      }
      process.on('SIGINT', stop)
      process.on('SIGTERM', stop)
    }),
})
