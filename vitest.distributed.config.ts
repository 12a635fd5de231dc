import { defineConfig } from 'vitest/config';

// `npm run test:distributed`: the distributed search on every registered variant, and its
// resumes after faults (test/**/*.slow.ts); npm test runs a representative subset.
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
