import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'property-tests/**/*.test.ts'],
    setupFiles: ['test/support/setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Real RocksDB work shares Node's libuv pool; two files at a time keeps a 2-core machine responsive.
    maxWorkers: 2,
  },
})
