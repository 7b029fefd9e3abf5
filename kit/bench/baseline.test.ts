// The baseline for `npm run bench` (run on its own, never by npm test): the cost of starting Vitest and running one test.
import { expect, test } from "vitest";

test("one plus one", () => {
  expect(1 + 1).toBe(2);
});
