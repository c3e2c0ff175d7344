// Runs before every test file (vitest setupFiles): records machine transitions for the coverage check.
import { afterAll, expect } from 'vitest'
import { flushCoverage, recordInspection } from './coverage.js'
import { inspectors } from './harness.js'

inspectors.add(recordInspection)
afterAll(() => flushCoverage(expect.getState().testPath ?? 'unknown'))
