import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Real Redis and Postgres: generous timeouts, never timing assertions.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Two cores: two files at a time keeps the machine responsive for the workers under test.
    maxWorkers: 2,
    reporters: ['default', './test/helpers/summary-reporter.ts'],
  },
});
