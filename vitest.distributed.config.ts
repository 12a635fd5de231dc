import { defineConfig } from 'vitest/config';

// The slow tests (test/**/*.slow.ts), each run by its own script: `npm run test:distributed` (the
// distributed search on the registered variants, and its resumes after faults; npm test runs a
// representative subset) and `npm run test:por-large`.
export default defineConfig({
  test: {
    include: ['test/**/*.slow.ts'],
    testTimeout: 600_000,
    hookTimeout: 600_000,
    pool: 'forks',
    reporters: ['default', 'json'],
    outputFile: { json: 'out/vitest-distributed-report.json' },
  },
});
