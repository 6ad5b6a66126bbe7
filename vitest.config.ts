import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Two cores on CI: keep worker count low so e2e timings stay sane.
    pool: 'forks',
    maxWorkers: 2,
  },
});
