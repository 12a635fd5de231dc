import { defineConfig } from 'vitest/config';

// Tests against the real kernel in QEMU (npm run test:kernel). Each file boots one VM in
// beforeAll; files run one after another because the machine has 2 cores and TCG is slow.
export default defineConfig({
  test: {
    include: ['conformance/tests/**/*.kernel.test.ts'],
    testTimeout: 180_000,
    hookTimeout: 180_000,
    pool: 'forks',
    fileParallelism: false,
    // .ci/run reads the counts for its closing line, as it does for the unit tests.
    reporters: ['default', 'json'],
    outputFile: { json: 'out/vitest-kernel-report.json' },
  },
});
