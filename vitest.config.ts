import {defineConfig} from 'vitest/config'

/*
 * Two projects: unit tests (pure code, no root: `npm test` runs these) and
 * system tests (*.system.test.ts: BPF loaded for real, namespaces, labs,
 * traffic; root). `make test` runs both. A system test never skips: without
 * its prerequisites it fails and says why.
 */
export default defineConfig({
  test: {
    // Datapath and lab tests create namespaces and load BPF: give them room.
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // Two cores: more workers only contend for the kernel's locks.
    maxWorkers: 2,
    projects: [
      {extends: true, test: {name: 'unit', include: ['test/**/*.test.ts'], exclude: ['test/**/*.system.test.ts']}},
      {extends: true, test: {name: 'system', include: ['test/**/*.system.test.ts']}},
    ],
  },
})
