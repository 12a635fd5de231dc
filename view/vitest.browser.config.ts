import { defineConfig } from 'vitest/config';

// The browser tests: Debian's Chromium (view/setup-browser.sh installs it) driven by
// playwright-core against a real `vfio-mc serve` and a real HTML report.
export default defineConfig({
  test: {
    include: ['test/view/**/*.browser.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 60_000,
    pool: 'forks',
    reporters: ['default', 'json'],
    outputFile: { json: 'out/vitest-browser-report.json' },
  },
});
