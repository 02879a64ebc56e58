/// <reference types="vitest/config" />
import { defineConfig } from "vite";

// Built into dist/ and embedded in the ETL binary (etl/build.rs): no CDN, no external URL.
export default defineConfig({
  base: "/",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    assetsInlineLimit: 0,
    chunkSizeWarningLimit: 1024,
    sourcemap: false,
  },
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
  // Unit tests (npm test, scripts/build-ui.sh --check): the pure modules, in Node, no DOM. No
  // performance hints after the summary, so that the run ends with it.
  test: {
    include: ["src/**/*.test.ts"],
    environment: "node",
    experimental: { diagnostics: false },
  },
});
