import { configDefaults, defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The pack-and-install test takes about a minute: `npm run test:package` runs it (README, Development).
    exclude: process.env.TRESOR_PACKAGE_TEST ? configDefaults.exclude : [...configDefaults.exclude, 'test/package/**'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Two cores on CI: keep worker count low so e2e timings stay sane.
    pool: 'forks',
    maxWorkers: 2,
  },
});
