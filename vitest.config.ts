import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';

// Unit and model tests. Tests that need a real kernel (conformance/**/*.kernel.test.ts)
// run separately with `npm run test:kernel`, those that need Chromium with `npm run test:browser`.
export default defineConfig({
  test: {
    include: [
      'test/**/*.test.ts',
      'machines/**/*.test.ts',
      'invariants/**/*.test.ts',
      'explorer/**/*.test.ts',
      'conformance/**/*.test.ts',
    ],
    exclude: ['**/node_modules/**', '**/*.kernel.test.ts', '**/*.browser.test.ts'],
    testTimeout: 600_000,
    hookTimeout: 600_000,
    pool: 'forks',
    // Every core: the tests are CPU-bound explorations and the main process waits. Vitest's
    // default (cores - 1) ran one file at a time on CI's two cores.
    maxWorkers: availableParallelism(),
    // The JSON report lets .ci/run print a plain 'N passed, N failed' closing line.
    reporters: ['default', 'json'],
    outputFile: { json: 'out/vitest-report.json' },
  },
});
