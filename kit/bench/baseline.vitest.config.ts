// Vitest configuration of the bench baseline: one trivial test, nothing else.
import { defineConfig } from "vitest/config";

export default defineConfig({ test: { root: new URL(".", import.meta.url).pathname, include: ["baseline.test.ts"], watch: false } });
