#!/usr/bin/env node
/**
 * The `rockvisor` command (see src/cli/program.ts, or `rockvisor --help`). Exit codes: 0 done, 1 a storage error
 * (`<tag>: <message>`, one line), 2 a usage error (one line and the command's usage), 130 a demo Ctrl-C stopped
 * before it finished.
 */
import { run } from './cli/program.js'
import { processIo } from './cli/io.js'

// A reader that went away (`rockvisor scan ... | head`) ends the command quietly; any other failure to write the
// output (a full disk: `> /dev/full`) ends it with one line and exit code 1, never a stack trace, never exit 0.
const cannotWrite = (name: string, e: NodeJS.ErrnoException): never => {
  if (e.code === 'EPIPE') process.exit(0)
  if (name === 'the output') {
    try {
      process.stderr.write(`error: cannot write ${name}: ${e.code ?? e.message}\n`)
    } catch {
      // nowhere left to say it
    }
  }
  process.exit(1)
}
process.stdout.on('error', (e: NodeJS.ErrnoException) => cannotWrite('the output', e))
process.stderr.on('error', (e: NodeJS.ErrnoException) => cannotWrite('the error output', e))

// No top-level await: nothing in the package's module graph has one (require() of an ES module refuses them).
void run(process.argv.slice(2), processIo()).then((code) => {
  // Exit once what was written has been flushed (a pipe may still hold output); nothing else needs to run. A write
  // that failed meanwhile fails this one too (its error event may not have been delivered yet).
  process.stdout.write('', (e) => {
    if (e) cannotWrite('the output', e)
    process.stderr.write('', () => process.exit(code))
  })
})
